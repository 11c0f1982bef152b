// HDF5 inputs of `cohort aggregate` and `cohort compress` (read_hdf5_floats): the input is the
// file; its dataset "vectors" is read as both commands read it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "app/hdf5_input.h"
#include "core/errors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cohort;
  const std::string path = fuzz::write_file("input.h5", data, size);
  for (const auto& [min_rank, max_rank] : {std::pair{2, 3}, std::pair{2, 2}}) {
    try {
      const Hdf5Floats in = read_hdf5_floats(path, "vectors", min_rank, max_rank, 2);
      std::size_t total = 1;
      for (const auto d : in.dims) total *= static_cast<std::size_t>(d);
      if (in.dims.size() < 2 || in.data.size() != total)
        fuzz::violated("hdf5_input", "shape and data disagree");
    } catch (const UsageError&) {
    }
  }
  return 0;
}
