// LIBSVM text (read_libsvm). The first input byte picks the call: bit 0 regression, bits 1-7 the
// dimension argument (0: largest index seen); the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.h"
#include "data/loaders.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  if (size == 0) return 0;
  const bool regression = (data[0] & 1) != 0;
  const std::int64_t dim = data[0] >> 1;
  const std::string path = fuzz::write_file("input.svm", data + 1, size - 1);
  try {
    const data::Dataset ds = data::read_libsvm(path, dim, regression);
    const std::size_t rows = static_cast<std::size_t>(ds.rows);
    if (ds.rows < 1 || ds.dim < 1 || ds.x.size() != rows * static_cast<std::size_t>(ds.dim) ||
        (regression ? ds.targets.size() : ds.labels.size()) != rows)
      fuzz::violated("libsvm", "dataset sizes are inconsistent");
    for (const std::int32_t y : ds.labels)
      if (y < 0 || y >= ds.num_classes) fuzz::violated("libsvm", "label outside 0..C-1");
  } catch (const UsageError&) {
  }
  return 0;
}
