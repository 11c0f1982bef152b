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

// Reads dataset `name` of `path` as float32; its rank must lie in [min_rank, max_rank].
// Throws UsageError naming the file and dataset for a missing file, dataset or wrong shape.
Hdf5Floats read_hdf5_floats(const std::string& path, const std::string& name, int min_rank,
                            int max_rank);

}  // namespace cohort
