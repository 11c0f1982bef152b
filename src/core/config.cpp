#include "core/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort {
namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string item;
  while (std::getline(ss, item, '.')) parts.push_back(item);
  return parts;
}

std::string node_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

class Validator {
 public:
  explicit Validator(std::string source) : source_(std::move(source)) {}

  YAML::Node section(const YAML::Node& user, const Section& s, const std::string& path) {
    const std::string prefix = path.empty() ? "" : path + ".";
    if (user && !user.IsNull() && !user.IsMap())
      fail(fmt::format("'{}' must be a mapping of keys (see `cohort list`), got '{}'",
                       path.empty() ? "<top level>" : path, node_text(user)));
    YAML::Node out(YAML::NodeType::Map);
    const Component* comp = nullptr;
    std::vector<std::string> valid;
    if (s.is_slot()) {
      std::string name = s.default_component;
      if (user && user["name"]) name = scalar(user["name"], prefix + "name");
      comp = s.find_component(name);
      if (!comp) {
        std::vector<std::string> names;
        std::string list;
        for (const auto& c : s.components) {
          names.push_back(c.name);
          list += (list.empty() ? "" : ", ") + c.name;
        }
        const std::string near = nearest(name, names);
        fail(fmt::format("unknown {} '{}' (known: {}){}", prefix + "name", name, list,
                         near.empty() ? "" : fmt::format("; did you mean '{}'?", near)));
      }
      out["name"] = comp->name;
      valid.push_back("name");
    }
    auto take = [&](const Option& o) {
      valid.push_back(o.key);
      const YAML::Node v = user ? user[o.key] : YAML::Node();
      out[o.key] = (v && !v.IsNull()) ? check(v, o, prefix + o.key) : YAML::Load(o.default_value);
    };
    for (const auto& o : s.options) take(o);
    if (comp)
      for (const auto& o : comp->options) take(o);
    for (const auto& child : s.children) {
      valid.push_back(child.key);
      out[child.key] = section(user ? user[child.key] : YAML::Node(), child, prefix + child.key);
    }
    if (user && user.IsMap()) {
      for (const auto& kv : user) {
        if (!kv.first.IsScalar())
          fail(fmt::format("key '{}' in '{}' is not a name", node_text(kv.first),
                           path.empty() ? "<top level>" : path));
        const std::string key = kv.first.Scalar();
        if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
        unknown_key(s, comp, key, prefix, valid);
      }
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw UsageError(fmt::format("{}: {}", source_, msg));
  }

  std::string scalar(const YAML::Node& v, const std::string& path) const {
    if (!v.IsScalar()) fail(fmt::format("{} must be a name, got '{}'", path, node_text(v)));
    return v.Scalar();
  }

  [[noreturn]] void unknown_key(const Section& s, const Component* comp, const std::string& key,
                                const std::string& prefix,
                                const std::vector<std::string>& valid) const {
    // A key that belongs to a sibling component gets a pointed message.
    std::string owners;
    for (const auto& c : s.components)
      for (const auto& o : c.options)
        if (o.key == key) owners += (owners.empty() ? "" : ", ") + c.name;
    if (comp && !owners.empty())
      fail(fmt::format("key '{}{}' is not an option of {}name '{}'; it belongs to: {}", prefix, key,
                       prefix, comp->name, owners));
    const std::string near = nearest(key, valid);
    std::string list;
    for (const auto& k : valid) list += (list.empty() ? "" : ", ") + k;
    fail(fmt::format("unknown key '{}{}'{} (valid here: {})", prefix, key,
                     near.empty() ? "" : fmt::format(" (did you mean '{}{}'?)", prefix, near),
                     list));
  }

  [[noreturn]] void bad_value(const YAML::Node& v, const Option& o, const std::string& path) const {
    fail(fmt::format("{} = '{}' is not allowed: expected {}", path, node_text(v),
                     allowed_text(o)));
  }

  [[noreturn]] void too_large(const YAML::Node& v, const Option& o, const std::string& path) const {
    fail(fmt::format("{} = '{}' is not allowed: expected {} (the key holds at most {})", path,
                     node_text(v), allowed_text(o), o.int_max));
  }

  // An integer literal outside the key's type (the list case reports it for the whole list).
  static bool beyond_type(const std::string& t, const Option& o) {
    try {
      std::size_t used = 0;
      const long long x = std::stoll(t, &used, 10);
      return used == t.size() && (x > o.int_max || x < -o.int_max - 1);
    } catch (const std::out_of_range&) {
      return true;
    } catch (const std::invalid_argument&) {
      return false;
    }
  }

  bool in_range(double x, const Option& o) const {
    if (std::isnan(x)) return false;
    if (o.min_exclusive ? !(x > o.min) : !(x >= o.min)) return false;
    return x <= o.max;
  }

  YAML::Node number(const YAML::Node& v, const Option& o, const std::string& path,
                    bool integer) const {
    if (!v.IsScalar()) bad_value(v, o, path);
    const std::string& t = v.Scalar();
    try {
      std::size_t used = 0;
      if (integer) {
        const long long x = std::stoll(t, &used, 10);
        if (used != t.size()) bad_value(v, o, path);
        // Checked in the key's own type before any narrowing (Note [Input sizes]).
        if (x > o.int_max || x < -o.int_max - 1) too_large(v, o, path);
        if (!in_range(static_cast<double>(x), o)) bad_value(v, o, path);
        return YAML::Node(x);
      }
      double x;
      if (t == "inf" || t == ".inf") {
        x = INFINITY;
        used = t.size();
      } else {
        x = std::stod(t, &used);
      }
      if (used != t.size() || !in_range(x, o)) bad_value(v, o, path);
      // stod reads spellings yaml-cpp cannot ("INF", "-inf", "0x10"): store those canonically
      // so that get_float/get_float_list read back what was validated.
      if (std::isinf(x)) return YAML::Node(x > 0 ? ".inf" : "-.inf");
      double back;
      if (!YAML::convert<double>::decode(v, back)) return YAML::Node(fmt::format("{}", x));
      return YAML::Node(v);
    } catch (const std::out_of_range&) {  // stoll/stod: beyond long long or double
      if (integer) too_large(v, o, path);
      bad_value(v, o, path);
    } catch (const std::invalid_argument&) {
      bad_value(v, o, path);
    }
  }

  YAML::Node check(const YAML::Node& v, const Option& o, const std::string& path) const {
    switch (o.type) {
      case OptType::kInt: return number(v, o, path, true);
      case OptType::kFloat: return number(v, o, path, false);
      case OptType::kBool: {
        bool b;
        if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) bad_value(v, o, path);
        return YAML::Node(b);
      }
      case OptType::kString:
        if (!v.IsScalar()) bad_value(v, o, path);
        return YAML::Node(v.Scalar());
      case OptType::kEnum: {
        if (o.float_list_len > 0 && v.IsSequence()) {
          if (v.size() != o.float_list_len)
            fail(fmt::format("{} = '{}' is not allowed: expected {} (got {} values)", path,
                             node_text(v), allowed_text(o), v.size()));
          Option elem = o;
          elem.type = OptType::kFloat;
          YAML::Node out(YAML::NodeType::Sequence);
          for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].IsScalar()) bad_value(v, o, path);
            try {
              out.push_back(number(v[i], elem, path, false));
            } catch (const UsageError&) {
              bad_value(v, o, path);
            }
          }
          out.SetStyle(YAML::EmitterStyle::Flow);
          return out;
        }
        if (!v.IsScalar()) bad_value(v, o, path);
        if (std::find(o.choices.begin(), o.choices.end(), v.Scalar()) == o.choices.end()) {
          const std::string near = nearest(v.Scalar(), o.choices);
          fail(fmt::format("{} = '{}' is not allowed: expected {}{}", path, v.Scalar(),
                           allowed_text(o),
                           near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
        }
        return YAML::Node(v.Scalar());
      }
      case OptType::kIntList:
      case OptType::kFloatList: {
        if (!v.IsSequence()) bad_value(v, o, path);
        YAML::Node out(YAML::NodeType::Sequence);
        Option elem = o;
        elem.type = o.type == OptType::kIntList ? OptType::kInt : OptType::kFloat;
        for (std::size_t i = 0; i < v.size(); ++i) {
          if (!v[i].IsScalar()) bad_value(v, o, path);
          try {
            out.push_back(number(v[i], elem, path, elem.type == OptType::kInt));
          } catch (const UsageError&) {
            if (elem.type == OptType::kInt && beyond_type(v[i].Scalar(), o)) too_large(v, o, path);
            bad_value(v, o, path);
          }
        }
        out.SetStyle(YAML::EmitterStyle::Flow);
        return out;
      }
      case OptType::kMapList: return map_list(v, o, path);
    }
    bad_value(v, o, path);
  }

  // Each item a mapping of known keys to scalars; an unknown key is named with the nearest one.
  YAML::Node map_list(const YAML::Node& v, const Option& o, const std::string& path) const {
    if (!v.IsSequence()) bad_value(v, o, path);
    YAML::Node out(YAML::NodeType::Sequence);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string item = fmt::format("{}[{}]", path, i);
      if (!v[i].IsMap())
        fail(fmt::format("{} must be a mapping such as {{type: relu}}, got '{}'", item,
                         node_text(v[i])));
      YAML::Node entry(YAML::NodeType::Map);
      for (const auto& kv : v[i]) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : node_text(kv.first);
        if (std::find(o.item_keys.begin(), o.item_keys.end(), key) == o.item_keys.end()) {
          const std::string near = nearest(key, o.item_keys);
          std::string list;
          for (const auto& k : o.item_keys) list += (list.empty() ? "" : ", ") + k;
          fail(fmt::format("unknown key '{}' in {}{} (valid here: {})", key, item,
                           near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near), list));
        }
        if (!kv.second.IsScalar())
          fail(fmt::format("{}.{} must be a single value, got '{}'", item, key,
                           node_text(kv.second)));
        entry[key] = kv.second.Scalar();
      }
      entry.SetStyle(YAML::EmitterStyle::Flow);
      out.push_back(entry);
    }
    return out;
  }

  std::string source_;
};

}  // namespace

static void set_path(YAML::Node node, const std::vector<std::string>& parts, std::size_t i,
                     const YAML::Node& value, const std::string& assignment) {
  if (i + 1 == parts.size()) {
    node[parts[i]] = value;
    return;
  }
  YAML::Node child = node[parts[i]];
  if (!child.IsDefined() || child.IsNull()) {
    node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    child.reset(node[parts[i]]);
  } else if (!child.IsMap()) {
    throw UsageError(fmt::format("override '{}': '{}' is not a mapping", assignment, parts[i]));
  }
  set_path(child, parts, i + 1, value, assignment);
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError(fmt::format("override '{}' must look like key.path=value", assignment));
  const auto parts = split_path(assignment.substr(0, eq));
  for (const auto& part : parts)
    if (part.empty())
      throw UsageError(fmt::format("override '{}': empty key in dotted path", assignment));
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("override '{}': value is not valid YAML: {}", assignment, e.msg));
  }
  set_path(root, parts, 0, value, assignment);
}

Config Config::from_text(const std::string& yaml_text, const std::vector<std::string>& overrides,
                         const Section& schema, const std::string& source) {
  YAML::Node user;
  try {
    user = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1,
                                 e.mark.column + 1, e.msg));
  }
  if (!user || user.IsNull()) user = YAML::Node(YAML::NodeType::Map);
  // Checked before overrides: they would fail inside yaml-cpp on a scalar, or turn a list into
  // a map.
  if (!user.IsMap())
    throw UsageError(
        fmt::format("{}: '<top level>' must be a mapping of keys (see `cohort list`), "
                    "got '{}'",
                    source, node_text(user)));
  for (const auto& o : overrides) apply_override(user, o);
  Config c;
  c.source_ = source;
  c.resolved_ = Validator(source).section(user, schema, "");
  return c;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides,
                    const Section& schema) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("cannot open config file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return from_text(ss.str(), overrides, schema, path);
}

YAML::Node Config::lookup(const std::string& path) const {
  YAML::Node n;
  n.reset(resolved_);
  for (const auto& p : split_path(path)) {
    const YAML::Node& cn = n;
    if (!cn.IsMap() || !cn[p]) throw std::logic_error("config key not in schema: " + path);
    YAML::Node next = cn[p];
    n.reset(next);
  }
  return n;
}

long long Config::get_int(const std::string& path) const { return lookup(path).as<long long>(); }
double Config::get_float(const std::string& path) const {
  const YAML::Node n = lookup(path);
  if (n.Scalar() == "inf" || n.Scalar() == ".inf") return INFINITY;
  return n.as<double>();
}
bool Config::get_bool(const std::string& path) const { return lookup(path).as<bool>(); }
std::string Config::get_string(const std::string& path) const {
  const YAML::Node n = lookup(path);
  return n.IsNull() ? std::string() : n.as<std::string>();
}
std::vector<long long> Config::get_int_list(const std::string& path) const {
  return lookup(path).as<std::vector<long long>>();
}
std::vector<double> Config::get_float_list(const std::string& path) const {
  return lookup(path).as<std::vector<double>>();
}
bool Config::is_list(const std::string& path) const { return lookup(path).IsSequence(); }

std::vector<std::map<std::string, std::string>> Config::get_map_list(
    const std::string& path) const {
  std::vector<std::map<std::string, std::string>> out;
  for (const auto& item : lookup(path)) {
    std::map<std::string, std::string> m;
    for (const auto& kv : item) m[kv.first.Scalar()] = kv.second.Scalar();
    out.push_back(std::move(m));
  }
  return out;
}

std::string Config::resolved_text() const {
  YAML::Emitter e;
  e << resolved_;
  return std::string(e.c_str()) + "\n";
}

}  // namespace cohort
