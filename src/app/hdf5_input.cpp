#include "app/hdf5_input.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/limits.h"

namespace cohort {
namespace {

// Closes an HDF5 handle on every path out of the reader.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace

Hdf5Floats read_hdf5_floats(const std::string& path, const std::string& name, int min_rank,
                            int max_rank, int copies) {
  require_usage(std::filesystem::exists(path), fmt::format("--input '{}' does not exist", path));
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  require_usage(file.get() >= 0, fmt::format("--input '{}' is not an HDF5 file", path));
  const Handle ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  require_usage(ds.get() >= 0, fmt::format("--input '{}' has no dataset '{}' (choose one with "
                                           "--dataset)",
                                           path, name));
  const Handle space(H5Dget_space(ds.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  Hdf5Floats in;
  if (rank >= min_rank && rank <= max_rank) {
    in.dims.resize(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), in.dims.data(), nullptr);
  }
  const Handle type(H5Dget_type(ds.get()), H5Tclose);
  const bool is_float = H5Tget_class(type.get()) == H5T_FLOAT;
  require_usage(!in.dims.empty() && is_float,
                fmt::format("dataset '{}' in '{}' must be a floating-point array of {} "
                            "dimensions (n x d{})",
                            name, path,
                            min_rank == max_rank ? std::to_string(min_rank)
                                                 : fmt::format("{} to {}", min_rank, max_rank),
                            max_rank == 3 ? ", or n x rows x cols" : ""));
  // The shape is checked in its own type (hsize_t) before any size is computed from it.
  std::string shape;
  for (auto v : in.dims) shape += (shape.empty() ? "" : " x ") + std::to_string(v);
  require_usage(std::find(in.dims.begin(), in.dims.end(), hsize_t{0}) == in.dims.end(),
                fmt::format("dataset '{}' in '{}' is empty (shape {}): it needs at least one row "
                            "and one value per row",
                            name, path, shape));
  const auto int_max = static_cast<hsize_t>(std::numeric_limits<int>::max());
  require_usage(std::all_of(in.dims.begin(), in.dims.end(), [&](hsize_t v) { return v <= int_max; }),
                fmt::format("dataset '{}' in '{}' has shape {}: every dimension must be at most {}",
                            name, path, shape, int_max));
  const std::string what = fmt::format("dataset '{}' in '{}' (shape {}, float32{})", name, path,
                                       shape, copies > 1 ? fmt::format(", {} copies", copies) : "");
  std::int64_t total = 1;
  for (auto v : in.dims) total = checked_mul(total, static_cast<std::int64_t>(v), what);
  require_memory(checked_mul(checked_mul(total, sizeof(float), what), copies, what), what);
  in.data.resize(static_cast<std::size_t>(total));
  const herr_t rc =
      H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, in.data.data());
  require_usage(rc >= 0, fmt::format("dataset '{}' in '{}' cannot be read as float32 (corrupt "
                                     "data, or a compression filter this HDF5 library lacks)",
                                     name, path));
  return in;
}

}  // namespace cohort
