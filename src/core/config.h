// A validated run configuration: the user's YAML plus `key=value` overrides, checked against
// the schema (core/schema.h) and resolved (every default filled in) before any work starts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/schema.h"

namespace cohort {

class Config {
 public:
  // Parses, applies overrides, validates against the schema and fills defaults.
  // Throws UsageError naming the file, key, value and what is allowed.
  static Config load(const std::string& path, const std::vector<std::string>& overrides,
                     const Section& schema);
  static Config from_text(const std::string& yaml_text, const std::vector<std::string>& overrides,
                          const Section& schema, const std::string& source = "<config>");

  // Typed access by dotted path ("algorithm.local_steps"). The key must be in the schema.
  long long get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  std::string get_string(const std::string& path) const;  // strings, enums, component names
  std::vector<long long> get_int_list(const std::string& path) const;
  std::vector<double> get_float_list(const std::string& path) const;
  // Whether the value is a list (a key declared with opt_enum_or_floats: the list form).
  bool is_list(const std::string& path) const;
  // A list of mappings (OptType::kMapList): each item's keys and scalar values, as written.
  std::vector<std::map<std::string, std::string>> get_map_list(const std::string& path) const;

  // The resolved configuration as YAML text (stored in every results file).
  std::string resolved_text() const;
  const YAML::Node& resolved() const { return resolved_; }
  const std::string& source() const { return source_; }

 private:
  YAML::Node lookup(const std::string& path) const;
  YAML::Node resolved_;
  std::string source_;
};

// Applies one "a.b.c=value" override to a YAML tree (value parsed as YAML).
void apply_override(YAML::Node& root, const std::string& assignment);

}  // namespace cohort
