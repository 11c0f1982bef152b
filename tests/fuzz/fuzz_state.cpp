// Run-state bytes (StateBundle::deserialize), the part of a checkpoint after its header. Bytes
// that deserialize must serialize back to themselves, and their client rows must be readable
// (merge reads every row).
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "core/state.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  StateBundle b;
  try {
    b = StateBundle::deserialize(std::span<const std::uint8_t>(data, size));
  } catch (const std::runtime_error&) {
    return 0;
  }
  const std::vector<std::uint8_t> again = b.serialize();
  if (again != std::vector<std::uint8_t>(data, data + size))
    fuzz::violated("state", "deserialized bytes do not serialize back to themselves");
  StateBundle merged;
  merged.merge(std::move(b));
  return 0;
}
