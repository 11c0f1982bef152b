#include "metrics/results_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort::metrics {
namespace {

// Every HDF5 call is checked; a failure names the call and the file.
hid_t check(hid_t id, const char* what, const std::string& file) {
  if (id < 0) throw std::runtime_error(fmt::format("HDF5 {} failed on '{}'", what, file));
  return id;
}

}  // namespace

std::string hdf5_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return fmt::format("{}.{}.{}", maj, min, rel);
}

// Note [Crash-consistent results file]: a run killed at any instant (kill -9, the OOM killer,
// a node that loses its job) leaves at output.path an HDF5 file that any reader opens, holding
// every round the run had finished. HDF5 itself cannot promise that for a file it updates in
// place: between and during flushes it rewrites object headers, B-trees and the superblock in
// an order of its own, and a writer stopped in between leaves a superblock whose end of file
// lies past the real end ("truncated file: eof ... < stored ...") or metadata pointing past the
// stored end ("addr overflow"), about one kill in eight with short rounds. SWMR (HDF5 1.10)
// orders those writes, but it marks the superblock "open for write", and a killed file then
// opens only with SWMR read or after h5clear: plain h5py refuses it. A log of rounds merged at
// the end would leave a killed run's rounds outside the file every reader looks at.
//
// So the file is built in memory (HDF5's core driver, no backing store) and every flush()
// publishes a whole, closed-file image: written to PATH.partial, then renamed over PATH. A
// rename is atomic, so PATH is at every instant either the previous image or the new one, each
// a complete HDF5 file; a kill mid-write leaves only PATH.partial, which the next run at that
// path removes. The cost is one copy and one write of the whole image: the file during the run
// holds the attributes, the /rounds series and the /clients rows (600 KiB after 3000 rounds of
// tests/configs/invariance_linear.yaml), and the large /model datasets come only with the last
// flush. Publishing every round made that run 5x slower (0.8 ms per round to publish, 0.18 ms
// to compute), so a round's flush(false) publishes only when at least nine times the last
// publish's cost has passed since it: at most a tenth of the run's time goes to publishing and
// rounds of a millisecond or more are all published. A round the terminal announces (the
// progress line) is published before the line is printed (flush(true)), so every round a user
// saw completed is in the file after a kill; unannounced sub-millisecond rounds may be lost, at
// most the last ~10 publish-times (a few ms) of them. Status changes, the resumed rows and the
// end of the run are always published. Nothing is fsynced: the promise is about the process
// being killed, not the machine losing power.
ResultsFile::ResultsFile(ResultsClaim claim, const std::string& config)
    : path_(claim.path()), claim_(std::move(claim)) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, once
  const std::string partial = path_ + ".partial";
  std::remove(partial.c_str());  // a leftover of a run killed before it published its file
  const hid_t fapl = check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", path_);
  H5Pset_fapl_core(fapl, 1 << 16, false);  // in memory: flush() publishes the image
  file_ = H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (file_ < 0)
    throw UsageError(fmt::format("output.path: cannot create HDF5 file '{}'", partial));
  try {
    set_attribute("config", config);
    set_attribute("status", std::string("running"));
    set_attribute("message", std::string());
    flush();  // the first image is published through the claim
  } catch (...) {
    close_file();
    std::remove(partial.c_str());
    throw;
  }
}

ResultsFile::ResultsFile(const std::string& path, ExistingResults existing,
                         const std::string& config)
    : ResultsFile(ResultsClaim(path, existing), config) {}

void ResultsFile::close_file() {
  if (file_ >= 0 && dirty_ && published_) {
    try {
      flush();
    } catch (const std::exception&) {  // the last published image stays
    }
  }
  for (auto& [name, id] : series_) H5Dclose(id);
  for (auto& [name, id] : client_rows_) H5Dclose(id);
  series_.clear();
  client_rows_.clear();
  if (file_ >= 0) H5Fclose(file_);
  file_ = -1;
}

ResultsFile::~ResultsFile() {
  close_file();
  claim_.reset();  // the lock goes only after the file is closed
}

void ResultsFile::set_attribute(const std::string& name, const std::string& value) {
  dirty_ = true;
  // Variable-length UTF-8 strings: h5py reads them as str, h5dump prints them plainly.
  if (H5Aexists(file_, name.c_str()) > 0) H5Adelete(file_, name.c_str());
  hid_t type = check(H5Tcopy(H5T_C_S1), "H5Tcopy", path_);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = check(H5Screate(H5S_SCALAR), "H5Screate", path_);
  hid_t attr = check(H5Acreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                     "H5Acreate2", path_);
  const char* text = value.c_str();
  check(H5Awrite(attr, type, &text), "H5Awrite", path_);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

template <class T>
static void numeric_attribute(hid_t file, const std::string& name, hid_t type, T value,
                              const std::string& path) {
  if (H5Aexists(file, name.c_str()) > 0) H5Adelete(file, name.c_str());
  hid_t space = check(H5Screate(H5S_SCALAR), "H5Screate", path);
  hid_t attr = check(H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                     "H5Acreate2", path);
  check(H5Awrite(attr, type, &value), "H5Awrite", path);
  H5Aclose(attr);
  H5Sclose(space);
}

void ResultsFile::set_attribute(const std::string& name, double value) {
  dirty_ = true;
  numeric_attribute(file_, name, H5T_NATIVE_DOUBLE, value, path_);
}
void ResultsFile::set_attribute(const std::string& name, std::int64_t value) {
  dirty_ = true;
  numeric_attribute(file_, name, H5T_NATIVE_INT64, value, path_);
}

void ResultsFile::set_status(const std::string& status, const std::string& message) {
  set_attribute("status", status);
  set_attribute("message", message);
  flush();
}

hid_t ResultsFile::group(const std::string& path) {
  if (H5Lexists(file_, path.c_str(), H5P_DEFAULT) > 0)
    return check(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), "H5Gopen2", path_);
  return check(H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "H5Gcreate2", path_);
}

hid_t ResultsFile::series(const std::string& name, hid_t type) {
  auto it = series_.find(name);
  if (it != series_.end()) return it->second;
  H5Gclose(group("/rounds"));
  hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {256};
  hid_t space = check(H5Screate_simple(1, dims, maxdims), "H5Screate_simple", path_);
  hid_t plist = check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", path_);
  H5Pset_chunk(plist, 1, chunk);
  const std::string full = "/rounds/" + name;
  hid_t ds = check(H5Dcreate2(file_, full.c_str(), type, space, H5P_DEFAULT, plist, H5P_DEFAULT),
                   "H5Dcreate2", path_);
  H5Pclose(plist);
  H5Sclose(space);
  series_[name] = ds;
  lengths_[name] = 0;
  integer_[name] = H5Tequal(type, H5T_NATIVE_INT64) > 0;
  return ds;
}

void ResultsFile::append_raw(const std::string& name, hid_t type, const void* value) {
  dirty_ = true;
  hid_t ds = series(name, type);
  const hsize_t n = static_cast<hsize_t>(lengths_[name]);
  hsize_t new_size[1] = {n + 1};
  check(H5Dset_extent(ds, new_size), "H5Dset_extent", path_);
  hid_t fspace = check(H5Dget_space(ds), "H5Dget_space", path_);
  hsize_t start[1] = {n}, count[1] = {1};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mspace = check(H5Screate_simple(1, count, nullptr), "H5Screate_simple", path_);
  check(H5Dwrite(ds, type, mspace, fspace, H5P_DEFAULT, value), "H5Dwrite", path_);
  H5Sclose(mspace);
  H5Sclose(fspace);
  lengths_[name] = static_cast<std::int64_t>(n + 1);
}

void ResultsFile::append(const std::string& name, double value) {
  append_raw(name, H5T_NATIVE_DOUBLE, &value);
}
void ResultsFile::append(const std::string& name, std::int64_t value) {
  append_raw(name, H5T_NATIVE_INT64, &value);
}

void ResultsFile::append_client_row(const std::string& name,
                                    const std::vector<std::int64_t>& row) {
  dirty_ = true;
  const hsize_t cols = row.size();
  auto it = client_rows_.find(name);
  if (it == client_rows_.end()) {
    H5Gclose(group("/clients"));
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols};
    hsize_t chunk[2] = {std::max<hsize_t>(1, std::min<hsize_t>(64, 65536 / std::max<hsize_t>(cols, 1))),
                        std::max<hsize_t>(cols, 1)};
    hid_t space = check(H5Screate_simple(2, dims, maxdims), "H5Screate_simple", path_);
    hid_t plist = check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", path_);
    H5Pset_chunk(plist, 2, chunk);
    H5Pset_deflate(plist, 1);
    const std::string full = "/clients/" + name;
    hid_t ds = check(H5Dcreate2(file_, full.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, plist,
                                H5P_DEFAULT),
                     "H5Dcreate2", path_);
    H5Pclose(plist);
    H5Sclose(space);
    it = client_rows_.emplace(name, ds).first;
    client_row_count_[name] = 0;
  }
  const hsize_t n = static_cast<hsize_t>(client_row_count_[name]);
  hsize_t new_size[2] = {n + 1, cols};
  check(H5Dset_extent(it->second, new_size), "H5Dset_extent", path_);
  hid_t fspace = check(H5Dget_space(it->second), "H5Dget_space", path_);
  hsize_t start[2] = {n, 0}, count[2] = {1, cols};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mspace = check(H5Screate_simple(2, count, nullptr), "H5Screate_simple", path_);
  check(H5Dwrite(it->second, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, row.data()), "H5Dwrite",
        path_);
  H5Sclose(mspace);
  H5Sclose(fspace);
  client_row_count_[name] = static_cast<std::int64_t>(n + 1);
}

// Note [Crash-consistent results file].
void ResultsFile::flush(bool always) {
  const auto clock = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const double t0 = clock();
  if (!always && published_ && t0 - published_at_ < 9 * publish_cost_) return;
  // H5Fget_file_image alone copies what the core driver holds, without the metadata still in
  // HDF5's cache (a root object header that is not there yet): flush into the image first.
  check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "H5Fflush", path_);
  const ssize_t size = H5Fget_file_image(file_, nullptr, 0);
  if (size <= 0) throw std::runtime_error(fmt::format("HDF5 H5Fget_file_image failed on '{}'", path_));
  image_.resize(static_cast<std::size_t>(size));
  if (H5Fget_file_image(file_, image_.data(), image_.size()) != size)
    throw std::runtime_error(fmt::format("HDF5 H5Fget_file_image failed on '{}'", path_));
  const std::string partial = path_ + ".partial";
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    throw UsageError(fmt::format("output.path: cannot write '{}': {}", partial, std::strerror(errno)));
  std::size_t done = 0;
  while (done < image_.size()) {
    const ssize_t n = write(fd, image_.data() + done, image_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      std::remove(partial.c_str());
      throw UsageError(fmt::format("output.path: cannot write '{}': {}", partial, std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (close(fd) != 0) {
    const int err = errno;
    std::remove(partial.c_str());
    throw UsageError(fmt::format("output.path: cannot write '{}': {}", partial, std::strerror(err)));
  }
  if (!published_) {
    claim_->publish(partial);  // refuses a file created at PATH meanwhile
    published_ = true;
  } else if (std::rename(partial.c_str(), path_.c_str()) != 0) {
    throw UsageError(fmt::format("output.path: cannot move '{}' to '{}': {}", partial, path_,
                                 std::strerror(errno)));
  }
  dirty_ = false;
  published_at_ = clock();
  publish_cost_ = published_at_ - t0;
}

void ResultsFile::export_rows(StateBundle& b) const {
  for (const auto& [name, ds] : series_) {
    const auto n = static_cast<std::size_t>(lengths_.at(name));
    if (integer_.at(name)) {
      std::vector<std::int64_t> v(n);
      if (n > 0)
        check(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dread",
              path_);
      b.i64["results/rounds/" + name] = std::move(v);
    } else {
      std::vector<double> v(n);
      if (n > 0)
        check(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dread",
              path_);
      b.f64["results/rounds/" + name] = std::move(v);
    }
  }
  for (const auto& [name, ds] : client_rows_) {
    hid_t space = check(H5Dget_space(ds), "H5Dget_space", path_);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    H5Sclose(space);
    std::vector<std::int64_t> v(dims[0] * dims[1]);
    if (!v.empty())
      check(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dread",
            path_);
    b.i64["results/clients/" + name] = std::move(v);
    b.i64["results/client_cols/" + name] = {static_cast<std::int64_t>(dims[1])};
  }
}

void ResultsFile::import_rows(const StateBundle& b) {
  const std::string rounds = "results/rounds/", clients = "results/clients/";
  for (const auto& [key, v] : b.f64)
    if (key.rfind(rounds, 0) == 0)
      for (double x : v) append(key.substr(rounds.size()), x);
  for (const auto& [key, v] : b.i64) {
    if (key.rfind(rounds, 0) == 0)
      for (std::int64_t x : v) append(key.substr(rounds.size()), x);
    if (key.rfind(clients, 0) == 0) {
      const std::string name = key.substr(clients.size());
      const auto cols = static_cast<std::size_t>(b.get_i64("results/client_cols/" + name).at(0));
      for (std::size_t at = 0; cols > 0 && at + cols <= v.size(); at += cols)
        append_client_row(name, std::vector<std::int64_t>(v.begin() + at, v.begin() + at + cols));
    }
  }
  flush();
}

static void ensure_parent_groups(hid_t file, const std::string& dataset_path) {
  std::size_t pos = 1;
  while ((pos = dataset_path.find('/', pos)) != std::string::npos) {
    const std::string g = dataset_path.substr(0, pos);
    if (H5Lexists(file, g.c_str(), H5P_DEFAULT) <= 0)
      H5Gclose(H5Gcreate2(file, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ++pos;
  }
}

void ResultsFile::write_vector(const std::string& dataset_path, const std::vector<std::int64_t>& v) {
  dirty_ = true;
  ensure_parent_groups(file_, dataset_path);
  hsize_t dims[1] = {v.size()};
  hid_t space = check(H5Screate_simple(1, dims, nullptr), "H5Screate_simple", path_);
  // Per-client vectors of a large population (/clients/num_samples, /clients/byzantine) are
  // mostly repeated values: deflated in chunks, 10^7 clients cost kilobytes in every published
  // image instead of 80 MB each (Note [Population scale] in algo/runner.cpp).
  hid_t dcpl = check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", path_);
  constexpr hsize_t kChunk = 1 << 16;
  if (v.size() > kChunk) {
    const hsize_t chunk[1] = {kChunk};
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 1);
  }
  hid_t ds = H5Dcreate2(file_, dataset_path.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, dcpl,
                        H5P_DEFAULT);
  H5Pclose(dcpl);
  check(ds, "H5Dcreate2", path_);
  if (!v.empty())
    check(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "H5Dwrite",
          path_);
  H5Dclose(ds);
  H5Sclose(space);
}

void ResultsFile::write_matrix(const std::string& dataset_path, const float* data,
                               std::int64_t rows, std::int64_t cols) {
  write_floats(dataset_path, data, {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)});
}

void ResultsFile::write_tensor3(const std::string& dataset_path, const float* data, std::int64_t n,
                                std::int64_t rows, std::int64_t cols) {
  write_floats(dataset_path, data,
               {static_cast<hsize_t>(n), static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)});
}

void ResultsFile::write_floats(const std::string& dataset_path, const float* data,
                               const std::vector<hsize_t>& dims) {
  dirty_ = true;
  ensure_parent_groups(file_, dataset_path);
  hid_t space = check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                      "H5Screate_simple", path_);
  hid_t ds = check(H5Dcreate2(file_, dataset_path.c_str(), H5T_NATIVE_FLOAT, space, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT),
                   "H5Dcreate2", path_);
  check(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite", path_);
  H5Dclose(ds);
  H5Sclose(space);
}

}  // namespace cohort::metrics
