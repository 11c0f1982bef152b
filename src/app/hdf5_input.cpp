#include "app/hdf5_input.h"

#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort {

Hdf5Floats read_hdf5_floats(const std::string& path, const std::string& name, int min_rank,
                            int max_rank) {
  require_usage(std::filesystem::exists(path), fmt::format("--input '{}' does not exist", path));
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  require_usage(file >= 0, fmt::format("--input '{}' is not an HDF5 file", path));
  const hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (ds < 0) {
    H5Fclose(file);
    throw UsageError(fmt::format("--input '{}' has no dataset '{}' (choose one with --dataset)",
                                 path, name));
  }
  const hid_t space = H5Dget_space(ds);
  const int rank = H5Sget_simple_extent_ndims(space);
  Hdf5Floats in;
  if (rank >= min_rank && rank <= max_rank) {
    in.dims.resize(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space, in.dims.data(), nullptr);
  }
  const hid_t type = H5Dget_type(ds);
  const bool is_float = H5Tget_class(type) == H5T_FLOAT;
  H5Tclose(type);
  if (in.dims.empty() || !is_float) {
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    throw UsageError(fmt::format("dataset '{}' in '{}' must be a floating-point array of {} "
                                 "dimensions (n x d{})",
                                 name, path,
                                 min_rank == max_rank ? std::to_string(min_rank)
                                                      : fmt::format("{} to {}", min_rank, max_rank),
                                 max_rank == 3 ? ", or n x rows x cols" : ""));
  }
  std::size_t total = 1;
  for (auto v : in.dims) total *= v;
  in.data.resize(total);
  const herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, in.data.data());
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(file);
  if (rc < 0) throw std::runtime_error(fmt::format("HDF5 read of '{}' in '{}' failed", name, path));
  return in;
}


}  // namespace cohort
