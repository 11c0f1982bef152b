#include "core/schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <fmt/format.h>

namespace cohort {

const Component* Section::find_component(const std::string& name) const {
  for (const auto& c : components)
    if (c.name == name) return &c;
  return nullptr;
}

Option opt_int(std::string key, long long def, std::string help, double min, double max) {
  Option o{std::move(key), OptType::kInt, std::to_string(def), std::move(help)};
  o.min = min;
  o.max = max;
  return o;
}

Option opt_int64(std::string key, long long def, std::string help, double min) {
  Option o = opt_int(std::move(key), def, std::move(help), min);
  o.int_max = std::numeric_limits<long long>::max();
  return o;
}

static std::string float_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

Option opt_float(std::string key, double def, std::string help, double min, double max,
                 bool min_exclusive) {
  Option o{std::move(key), OptType::kFloat, float_text(def), std::move(help)};
  o.min = min;
  o.max = max;
  o.min_exclusive = min_exclusive;
  return o;
}

Option opt_bool(std::string key, bool def, std::string help) {
  return Option{std::move(key), OptType::kBool, def ? "true" : "false", std::move(help)};
}

Option opt_string(std::string key, std::string def, std::string help) {
  return Option{std::move(key), OptType::kString, std::move(def), std::move(help)};
}

Option opt_enum(std::string key, std::string def, std::vector<std::string> choices,
                std::string help) {
  Option o{std::move(key), OptType::kEnum, std::move(def), std::move(help)};
  o.choices = std::move(choices);
  return o;
}

Option opt_enum_or_floats(std::string key, std::string def, std::vector<std::string> choices,
                          std::size_t n, std::string help) {
  Option o = opt_enum(std::move(key), std::move(def), std::move(choices), std::move(help));
  o.float_list_len = n;
  return o;
}

Option opt_int_list(std::string key, std::string def, std::string help, double min) {
  Option o{std::move(key), OptType::kIntList, std::move(def), std::move(help)};
  o.min = min;
  return o;
}

Option opt_float_list(std::string key, std::string def, std::string help) {
  return Option{std::move(key), OptType::kFloatList, std::move(def), std::move(help)};
}

Option opt_map_list(std::string key, std::vector<std::string> item_keys, std::string help) {
  Option o{std::move(key), OptType::kMapList, "[]", std::move(help)};
  o.item_keys = std::move(item_keys);
  return o;
}

static std::string range_text(const Option& o) {
  const bool has_min = std::isfinite(o.min), has_max = std::isfinite(o.max);
  if (has_min && has_max)
    return fmt::format(" in {}{}, {}]", o.min_exclusive ? "(" : "[", float_text(o.min),
                       float_text(o.max));
  if (has_min) return fmt::format(" {} {}", o.min_exclusive ? ">" : ">=", float_text(o.min));
  if (has_max) return fmt::format(" <= {}", float_text(o.max));
  return "";
}

std::string type_name(const Option& o) {
  switch (o.type) {
    case OptType::kInt: return "int" + range_text(o);
    case OptType::kFloat: return "float" + range_text(o);
    case OptType::kBool: return "bool";
    case OptType::kString: return "string";
    case OptType::kEnum: {
      std::string s;
      for (const auto& c : o.choices) s += (s.empty() ? "" : " | ") + c;
      if (o.float_list_len > 0) {
        s += " | [";
        for (std::size_t i = 0; i < o.float_list_len; ++i) s += i == 0 ? "float" : ", float";
        s += "]";
      }
      return s;
    }
    case OptType::kIntList: return "list of int" + range_text(o);
    case OptType::kFloatList: return "list of float";
    case OptType::kMapList: return "list of mappings";
  }
  return "?";
}

std::string allowed_text(const Option& o) {
  switch (o.type) {
    case OptType::kInt: return "an integer" + range_text(o);
    case OptType::kFloat: return "a number" + range_text(o);
    case OptType::kBool: return "true or false";
    case OptType::kString: return "a string";
    case OptType::kEnum: {
      if (o.float_list_len == 0) return "one of " + type_name(o);
      std::string s;
      for (const auto& c : o.choices) s += (s.empty() ? "" : " | ") + c;
      return fmt::format("one of {}, or a list of {} numbers", s, o.float_list_len);
    }
    case OptType::kIntList: return "a list of integers" + range_text(o) + ", e.g. [64, 32]";
    case OptType::kFloatList: return "a list of numbers, e.g. [1.0, 10.0]";
    case OptType::kMapList: {
      std::string keys;
      for (const auto& k : o.item_keys) keys += (keys.empty() ? "" : ", ") + k;
      return "a list of mappings with keys among " + keys + ", e.g. [{type: relu}]";
    }
  }
  return "?";
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    // A prefix or substring match counts as close ("lr" for "local_lr").
    if (c.find(word) != std::string::npos || word.find(c) != std::string::npos)
      d = std::min<std::size_t>(d, 2);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 2);
  return best_d <= limit ? best : "";
}

// A '|' inside a Markdown table cell ends the cell unless escaped ("relu | tanh").
static std::string md_cell(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

static void markdown_options(std::ostringstream& out, const std::string& prefix,
                             const std::vector<Option>& opts) {
  for (const auto& o : opts) {
    std::string def = o.default_value.empty() ? "\"\"" : o.default_value;
    out << "| `" << prefix << o.key << "` | " << md_cell(type_name(o)) << " | `" << md_cell(def)
        << "` | " << md_cell(o.help) << " |\n";
  }
}

static void markdown_section(std::ostringstream& out, const Section& s, const std::string& path) {
  const std::string prefix = path.empty() ? "" : path + ".";
  if (!path.empty()) out << "\n### `" << path << "`\n\n" << s.help << "\n\n";
  if (!s.options.empty() || s.is_slot()) {
    out << "| key | type | default | meaning |\n|---|---|---|---|\n";
    if (s.is_slot()) {
      std::vector<std::string> names;
      for (const auto& c : s.components) names.push_back(c.name);
      Option name_opt = opt_enum("name", s.default_component, names, "which component");
      markdown_options(out, prefix, {name_opt});
    }
    markdown_options(out, prefix, s.options);
  }
  for (const auto& c : s.components) {
    out << "\n`" << prefix << "name: " << c.name << "` — " << c.help << "\n";
    if (!c.options.empty()) {
      out << "\n| key | type | default | meaning |\n|---|---|---|---|\n";
      markdown_options(out, prefix, c.options);
    }
  }
  for (const auto& child : s.children) markdown_section(out, child, prefix + child.key);
}

std::string schema_markdown(const Section& root) {
  std::ostringstream out;
  markdown_section(out, root, "");
  return out.str();
}

static void list_options(std::ostringstream& out, const std::vector<Option>& opts,
                         const std::string& indent) {
  for (const auto& o : opts)
    out << fmt::format("{}{:<20} {:<28} default {:<10} {}\n", indent, o.key, type_name(o),
                       o.default_value.empty() ? "\"\"" : o.default_value, o.help);
}

static void list_section(std::ostringstream& out, const Section& s, const std::string& path) {
  const std::string prefix = path.empty() ? "" : path + ".";
  if (!path.empty()) out << "\n" << path << ": " << s.help << "\n";
  list_options(out, s.options, "    ");
  for (const auto& c : s.components) {
    out << "  " << prefix << "name: " << c.name
        << (c.name == s.default_component ? " (default)" : "") << " - " << c.help << "\n";
    list_options(out, c.options, "      ");
  }
  for (const auto& child : s.children) list_section(out, child, prefix + child.key);
}

std::string schema_listing(const Section& root) {
  std::ostringstream out;
  out << "Top-level keys:\n";
  list_section(out, root, "");
  return out.str();
}

}  // namespace cohort
