// Components that describe themselves: what the schema shows of a component and the factory that
// builds it, declared together in the component's own file (docs/architecture.md "Registration").
#pragma once

#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/schema.h"

namespace cohort {

// Note [Registration]
// Every category of components (data sources, partitions, models, algorithms, server
// optimizers, aggregators, compressors, attacks) is one explicit list of Registrations, returned
// by one function of the category's own file. There are no self-registering static objects:
// which components exist, and in what order `cohort list` shows them, is read in one place and
// does not depend on the linker. A Registration is a component's name, help and options (the
// schema's Component) and its factory, both written in the component's own file; the category's
// slot Section (the validator, `cohort list`, the README) and its factory dispatch are derived
// from the list, so adding a component is one new entry.
// Where a factory takes an options struct (compressors, aggregators, server optimizers,
// attacks), each option is a Field: the schema's Option bound to the struct member it fills, so
// that one declaration gives the key, type, default, help and range, and the reader.

// One option bound to the member of Opts that holds it.
template <class Opts>
struct Field {
  Option option;
  // Fills the member from a resolved config (path: the option's dotted key). Empty for a key
  // that the component's user reads itself (mean's weighted: the exchange).
  std::function<void(Opts&, const Config&, const std::string& path)> read;
  // The one slot offering the option when a component fills several slots (powersgd's mode:
  // compressor, not downlink_compressor); empty: every slot.
  std::string slot;
};

// A Field whose value is read into `member` by the member's type.
template <class Opts, class T>
Field<Opts> field(Option option, T Opts::*member, std::string slot = "") {
  auto read = [member](Opts& o, const Config& cfg, const std::string& path) {
    if constexpr (std::is_same_v<T, bool>)
      o.*member = cfg.get_bool(path);
    else if constexpr (std::is_integral_v<T>)
      o.*member = static_cast<T>(cfg.get_int(path));  // the schema bounds it (Note [Input sizes])
    else if constexpr (std::is_floating_point_v<T>)
      o.*member = static_cast<T>(cfg.get_float(path));
    else
      o.*member = cfg.get_string(path);
  };
  return Field<Opts>{std::move(option), std::move(read), std::move(slot)};
}

// A Field with its own reader, for a member that holds the value in another form (topk's
// index_bits: packed | plain as a bool).
template <class Opts>
Field<Opts> field(Option option,
                  std::function<void(Opts&, const Config&, const std::string&)> read) {
  return Field<Opts>{std::move(option), std::move(read), ""};
}

// A Field whose key the component's user reads itself, not the category's reader (mean's
// weighted: the exchange).
template <class Opts>
Field<Opts> read_elsewhere(Option option) {
  return Field<Opts>{std::move(option), {}, ""};
}

// One component of a category. Entry is Option where the factory reads the resolved config
// itself, Field<Opts> where it takes an Opts filled from the fields.
template <class Signature, class Entry = Option>
struct Registration {
  std::string name;
  std::string help;
  std::vector<Entry> options;
  // Builds the component; empty for a component built elsewhere (each list says where).
  std::function<Signature> make;
};

inline const Option& schema_option(const Option& o) { return o; }
template <class Opts>
const Option& schema_option(const Field<Opts>& f) {
  return f.option;
}
inline bool offered_in(const Option&, const std::string&) { return true; }
template <class Opts>
bool offered_in(const Field<Opts>& f, const std::string& slot) {
  return f.slot.empty() || f.slot == slot;
}

// The slot Section `key` of a category: its components in list order, each with the options
// it offers in that slot. The options common to every component are the caller's to add.
template <class Signature, class Entry>
Section slot_section(std::string key, std::string help, std::string default_component,
                     const std::vector<Registration<Signature, Entry>>& list) {
  Section s;
  s.key = std::move(key);
  s.help = std::move(help);
  s.default_component = std::move(default_component);
  for (const auto& r : list) {
    Component c{r.name, r.help, {}};
    for (const auto& e : r.options)
      if (offered_in(e, s.key)) c.options.push_back(schema_option(e));
    s.components.push_back(std::move(c));
  }
  return s;
}

// The entry called `name`, or nullptr.
template <class R>
const R* find_registration(const std::vector<R>& list, const std::string& name) {
  for (const auto& r : list)
    if (r.name == name) return &r;
  return nullptr;
}

// "a, b, c": the names of the entries that have a factory.
template <class R>
std::string buildable_names(const std::vector<R>& list) {
  std::string out;
  for (const auto& r : list)
    if (r.make) out += (out.empty() ? "" : ", ") + r.name;
  return out;
}

// Fills o from the fields offered in `slot`, read under "slot.key".
template <class Opts>
void read_fields(Opts& o, const std::vector<Field<Opts>>& fields, const Config& cfg,
                 const std::string& slot) {
  for (const auto& f : fields)
    if (f.read && offered_in(f, slot)) f.read(o, cfg, slot + "." + f.option.key);
}

// Fills o with the declared defaults of the fields: the fields alone, as a schema, resolved from
// an empty config and read back, so that a default is written once, in its Option.
template <class Opts>
void read_defaults(Opts& o, const std::vector<Field<Opts>>& fields) {
  Section schema;
  for (const auto& f : fields)
    if (f.read) schema.options.push_back(f.option);
  const Config defaults = Config::from_text("", {}, schema, "<defaults>");
  for (const auto& f : fields)
    if (f.read) f.read(o, defaults, f.option.key);
}

}  // namespace cohort
