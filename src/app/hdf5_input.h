// Reading a user's float dataset from an HDF5 file (`cohort compress`, `cohort aggregate`).
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

namespace cohort {

struct Hdf5Floats {
  std::vector<float> data;  // row-major
  std::vector<hsize_t> dims;
};

// Reads dataset `name` of `path` as float32; its rank must lie in [min_rank, max_rank], every
// dimension in [1, 2^31 - 1] (an empty input is an error, not an empty result). `copies` is how
// many float buffers of the input's size the caller will hold at once: their memory is compared
// with the machine's before anything is read (Note [Input sizes]), and HDF5 decompresses into a
// buffer of exactly the declared shape. Throws UsageError naming the file and dataset for a
// missing file, dataset, wrong or empty shape, or a shape too large for memory.
Hdf5Floats read_hdf5_floats(const std::string& path, const std::string& name, int min_rank,
                            int max_rank, int copies = 1);

}  // namespace cohort
