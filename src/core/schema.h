// The configuration schema: every key cohort accepts, with its type, default, allowed values
// and meaning. The validator, `cohort list` and the README's config reference are all generated
// from this one description, so they cannot drift apart.
#pragma once

#include <limits>
#include <string>
#include <vector>

namespace cohort {

// kMapList: a list of flat mappings (model.layers), each holding only the keys of `item_keys`
// with scalar values; what the values mean is checked by the key's user, which knows which keys
// each item's kind takes.
enum class OptType { kInt, kFloat, kBool, kString, kEnum, kIntList, kFloatList, kMapList };

// Integer keys end in an int (counts, sizes, iterations) unless declared with opt_int64, so the
// validator bounds them by that type before anything narrows them (Note [Input sizes]).
inline constexpr long long kIntKeyMax = std::numeric_limits<int>::max();

struct Option {
  std::string key;
  OptType type = OptType::kFloat;
  std::string default_value;  // YAML text; "" for strings means empty string
  std::string help;
  std::vector<std::string> choices;  // kEnum
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  long long int_max = kIntKeyMax;  // kInt, kIntList: the largest value the key's type holds
  // kEnum: when > 0, a list of exactly this many numbers is accepted too (data.normalize's
  // [mean, std]); Config::is_list tells the two forms apart.
  std::size_t float_list_len = 0;
  std::vector<std::string> item_keys;  // kMapList: the keys an item may hold
};

// A named implementation selected by `name:` in a component slot, with its own options.
struct Component {
  std::string name;
  std::string help;
  std::vector<Option> options;
};

// A mapping in the config file. A section with components is a slot: its `name:` key picks
// one component, whose options become valid keys of the section.
struct Section {
  std::string key;
  std::string help;
  std::vector<Option> options;    // keys common to the section
  std::vector<Section> children;  // nested mappings
  std::vector<Component> components;
  std::string default_component;  // slot default
  bool is_slot() const { return !components.empty(); }
  const Component* find_component(const std::string& name) const;
};

// Option builders, so schema tables stay readable.
Option opt_int(std::string key, long long def, std::string help, double min = 0,
               double max = std::numeric_limits<double>::infinity());
// An integer key read as a 64-bit value (seed).
Option opt_int64(std::string key, long long def, std::string help, double min = 0);
Option opt_float(std::string key, double def, std::string help,
                 double min = -std::numeric_limits<double>::infinity(),
                 double max = std::numeric_limits<double>::infinity(), bool min_exclusive = false);
Option opt_bool(std::string key, bool def, std::string help);
Option opt_string(std::string key, std::string def, std::string help);
Option opt_enum(std::string key, std::string def, std::vector<std::string> choices,
                std::string help);
// One of the choices, or a list of exactly n numbers.
Option opt_enum_or_floats(std::string key, std::string def, std::vector<std::string> choices,
                          std::size_t n, std::string help);
Option opt_int_list(std::string key, std::string def, std::string help, double min = 0);
Option opt_float_list(std::string key, std::string def, std::string help);
// A list of mappings whose items may hold only item_keys; its default is the empty list.
Option opt_map_list(std::string key, std::vector<std::string> item_keys, std::string help);

std::string type_name(const Option& o);       // "int >= 1", "float in (0, 1]", "relu | tanh"
std::string allowed_text(const Option& o);    // what a valid value looks like

// Levenshtein distance; used to suggest the nearest valid key or name.
std::size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word`, or "" when none is reasonably close.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Text renderings of the schema.
std::string schema_markdown(const Section& root);  // README config reference
std::string schema_listing(const Section& root);   // `cohort list`

}  // namespace cohort
