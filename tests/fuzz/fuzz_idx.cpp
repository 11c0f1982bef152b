// IDX files (read_idx_images, read_idx_labels): the input is the file, gzip or plain, and goes
// to both readers.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.h"
#include "data/loaders.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  const std::string path = fuzz::write_file("input.idx", data, size);
  try {
    const data::Dataset ds = data::read_idx_images(path);
    if (ds.x.size() != static_cast<std::size_t>(ds.rows) * static_cast<std::size_t>(ds.dim))
      fuzz::violated("idx", "image rows x dim differs from the pixels read");
  } catch (const UsageError&) {
  }
  try {
    (void)data::read_idx_labels(path);
  } catch (const UsageError&) {
  }
  return 0;
}
