// Run-state bytes (StateBundle::deserialize), the part of a checkpoint after its header. A bundle
// read from bytes must survive serialize and deserialize unchanged, its bytes must hold as many
// bytes as it serializes to (no entry lost or merged), and its client rows must be readable (merge
// reads every row).
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
  const std::vector<std::uint8_t> bytes = b.serialize();
  if (bytes.size() != size) fuzz::violated("state", "serialized size differs from the input's");
  if (StateBundle::deserialize(bytes).serialize() != bytes)
    fuzz::violated("state", "serialize and deserialize do not round-trip");
  StateBundle merged;
  merged.merge(std::move(b));
  return 0;
}
