// Config YAML and `key=value` overrides (Config::from_text). The input is the YAML text; after a
// line "#overrides" (a YAML comment) every further line is one override. A config that
// validates must read back: every key through its typed getter, and its resolved text must
// validate again to the same text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "algo/run_schema.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/schema.h"
#include "fuzz_common.h"

namespace {

using namespace cohort;

void read_every_key(const Config& c, const Section& s, const std::string& prefix) {
  auto read = [&](const Option& o) {
    const std::string path = prefix + o.key;
    switch (o.type) {
      case OptType::kInt: (void)c.get_int(path); break;
      case OptType::kFloat: (void)c.get_float(path); break;
      case OptType::kBool: (void)c.get_bool(path); break;
      case OptType::kString:
      case OptType::kEnum: (void)c.get_string(path); break;
      case OptType::kIntList: (void)c.get_int_list(path); break;
      case OptType::kFloatList: (void)c.get_float_list(path); break;
      case OptType::kMapList: (void)c.get_map_list(path); break;
    }
  };
  for (const auto& o : s.options) read(o);
  if (s.is_slot()) {
    const Component* comp = s.find_component(c.get_string(prefix + "name"));
    if (comp == nullptr) fuzz::violated("config", "resolved slot " + prefix + "name is unknown");
    for (const auto& o : comp->options) read(o);
  }
  for (const auto& child : s.children) read_every_key(c, child, prefix + child.key + ".");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string yaml = input;
  std::vector<std::string> overrides;
  const std::string mark = "#overrides\n";
  std::size_t at = input.rfind(mark, 0) == 0 ? 0 : input.find("\n" + mark);
  if (at != std::string::npos) {
    if (at > 0) ++at;  // keep the newline that ends the YAML part
    yaml = input.substr(0, at);
    std::size_t line = at + mark.size();
    while (line < input.size()) {
      const std::size_t end = std::min(input.find('\n', line), input.size());
      overrides.push_back(input.substr(line, end - line));
      line = end + 1;
    }
  }
  std::string text;
  try {
    const Config c = Config::from_text(yaml, overrides, algo::run_schema(), "fuzz.yaml");
    read_every_key(c, algo::run_schema(), "");
    text = c.resolved_text();
  } catch (const UsageError&) {
    return 0;
  }
  try {
    const Config again = Config::from_text(text, {}, algo::run_schema(), "resolved.yaml");
    if (again.resolved_text() != text)
      fuzz::violated("config", "resolved text changes when validated again:\n" + text);
  } catch (const UsageError& e) {
    fuzz::violated("config", std::string("resolved text does not validate again: ") + e.what());
  }
  return 0;
}
