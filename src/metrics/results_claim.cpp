#include "metrics/results_claim.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort::metrics {

namespace {

std::string describe(const ResultsFileInfo& info);

std::string in_use_message(const std::string& path) {
  return fmt::format("output.path: '{}' is being written by another cohort process (it holds "
                     "'{}.lock'); wait for it to finish or choose another output.path",
                     path, path);
}

std::string existing_message(const std::string& path, const ResultsFileInfo& info) {
  return fmt::format("output.path: '{}' already holds the results of a run ({}); pass "
                     "--overwrite to replace them, --resume to continue that run from its "
                     "checkpoints, or choose another output.path",
                     path, describe(info));
}

std::string foreign_message(const std::string& path, bool damaged = false) {
  if (damaged)
    return fmt::format("output.path: '{}' is an HDF5 file that cannot be read (a run killed by an "
                       "older cohort mid-write leaves such a file); cohort replaces it only on "
                       "`cohort run --resume` with a checkpoint of the same config in '{}.checkpoints': "
                       "otherwise move it away or choose another output.path",
                       path, path);
  return fmt::format("output.path: '{}' exists and is not a cohort results file; cohort never "
                     "overwrites it (not even with --overwrite): move it away or choose another "
                     "output.path",
                     path);
}

}  // namespace

std::string check_results_path(const std::string& path) {
  const ResultsFileInfo info = inspect_results_file(path);
  require_usage(!info.in_use, in_use_message(path));
  require_usage(info.kind != ResultsFileInfo::Kind::kOther, foreign_message(path, info.damaged));
  return info.kind == ResultsFileInfo::Kind::kResults ? existing_message(path, info) : "";
}

namespace {

std::string lock_path(const std::string& path) { return path + ".lock"; }

// A root attribute of string type (variable- or fixed-length), if present.
std::optional<std::string> string_attribute(hid_t file, const char* name) {
  if (H5Aexists(file, name) <= 0) return std::nullopt;
  const hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  if (attr < 0) return std::nullopt;
  std::optional<std::string> out;
  const hid_t type = H5Aget_type(attr);
  if (type >= 0 && H5Tget_class(type) == H5T_STRING) {
    const hid_t mem = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(type) > 0) {
      H5Tset_size(mem, H5T_VARIABLE);
      H5Tset_cset(mem, H5Tget_cset(type));
      char* text = nullptr;
      if (H5Aread(attr, mem, &text) >= 0) {
        out = text ? std::string(text) : std::string();
        if (text) H5free_memory(text);
      }
    } else {
      const std::size_t size = H5Tget_size(type);
      std::string buf(size + 1, '\0');
      H5Tset_size(mem, size + 1);
      H5Tset_strpad(mem, H5T_STR_NULLTERM);
      if (H5Aread(attr, mem, buf.data()) >= 0) out = std::string(buf.c_str());
    }
    H5Tclose(mem);
  }
  if (type >= 0) H5Tclose(type);
  H5Aclose(attr);
  return out;
}

bool has_hdf5_signature(const std::string& path) {
  static constexpr unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char head[8] = {0};
  const ssize_t n = pread(fd, head, sizeof head, 0);
  close(fd);
  return n == static_cast<ssize_t>(sizeof head) && std::memcmp(head, kSignature, sizeof head) == 0;
}

// True when another process holds an flock on `lock`. Never creates the lock file.
bool lock_held(const std::string& lock) {
  const int fd = open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // also drops the shared lock if it was taken
  return held;
}

std::string describe(const ResultsFileInfo& info) {
  return info.status.empty() ? std::string("no status") : "status " + info.status;
}

// What is at the path, whoever holds its lock.
ResultsFileInfo inspect_contents(const std::string& path) {
  ResultsFileInfo info;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    info.kind = errno == ENOENT ? ResultsFileInfo::Kind::kMissing : ResultsFileInfo::Kind::kOther;
    return info;
  }
  info.kind = ResultsFileInfo::Kind::kOther;
  if (!S_ISREG(st.st_mode) || !has_hdf5_signature(path)) return info;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // HDF5's own flock is not wanted here: the sidecar lock above says whether a writer is active.
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_file_locking(fapl, false, true);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (file < 0) {
    info.damaged = true;
    return info;
  }
  auto status = string_attribute(file, "status");
  auto config = string_attribute(file, "config");
  H5Fclose(file);
  if (status && config) {
    info.kind = ResultsFileInfo::Kind::kResults;
    info.status = std::move(*status);
    info.config = std::move(*config);
  }
  return info;
}

}  // namespace

ResultsFileInfo inspect_results_file(const std::string& path) {
  if (lock_held(lock_path(path))) {
    ResultsFileInfo info;
    info.in_use = true;
    return info;
  }
  return inspect_contents(path);
}

ResultsClaim::ResultsClaim(const std::string& path, ExistingResults existing) : path_(path) {
  namespace fs = std::filesystem;
  require_usage(!path.empty(), "output.path is empty: name the HDF5 results file to write");
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec)
    throw UsageError(fmt::format("output.path: cannot create directory '{}': {}", parent.string(),
                                 ec.message()));
  const std::string lock = lock_path(path);
  // Lock, then check that the lock file is still the one at `lock`: a previous holder removes
  // it when it is done, and a lock on a removed file protects nothing.
  for (;;) {
    const int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw UsageError(fmt::format("output.path: cannot create the lock file '{}': {}", lock,
                                   std::strerror(errno)));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      close(fd);
      if (err == EWOULDBLOCK)
        throw UsageError(in_use_message(path));
      throw UsageError(fmt::format("output.path: cannot lock '{}': {}", lock, std::strerror(err)));
    }
    struct stat held {}, now {};
    if (fstat(fd, &held) == 0 && stat(lock.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
        held.st_ino == now.st_ino) {
      lock_fd_ = fd;
      break;
    }
    close(fd);
  }
  try {
    const ResultsFileInfo info = inspect_contents(path);  // not ..._file: we hold the lock
    switch (info.kind) {
      case ResultsFileInfo::Kind::kMissing:
        break;
      case ResultsFileInfo::Kind::kResults:
        if (existing == ExistingResults::kRefuse)
          throw UsageError(existing_message(path, info));
        replaces_ = true;
        break;
      case ResultsFileInfo::Kind::kOther:
        if (info.damaged && existing == ExistingResults::kReplaceDamaged) {
          replaces_ = true;
          break;
        }
        throw UsageError(foreign_message(path, info.damaged));
    }
  } catch (...) {
    unlink(lock.c_str());
    close(lock_fd_);
    lock_fd_ = -1;
    throw;
  }
}

ResultsClaim::ResultsClaim(ResultsClaim&& other) noexcept
    : path_(std::move(other.path_)), lock_fd_(other.lock_fd_), replaces_(other.replaces_) {
  other.lock_fd_ = -1;
}

ResultsClaim::~ResultsClaim() {
  if (lock_fd_ < 0) return;
  unlink(lock_path(path_).c_str());  // while still holding it (see the constructor's loop)
  close(lock_fd_);
}

void ResultsClaim::publish(const std::string& partial) const {
  if (replaces_) {
    if (std::rename(partial.c_str(), path_.c_str()) != 0)
      throw UsageError(fmt::format("output.path: cannot move '{}' to '{}': {}", partial, path_,
                                   std::strerror(errno)));
    return;
  }
  if (renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) == 0) return;
  int err = errno;
  if (err == EINVAL || err == ENOSYS) {  // a file system without RENAME_NOREPLACE: link fails on
    if (link(partial.c_str(), path_.c_str()) == 0) {  // an existing target just the same
      unlink(partial.c_str());
      return;
    }
    err = errno;
  }
  if (err == EEXIST)
    throw UsageError(fmt::format(
        "output.path: '{}' was created by another program while this run started; it is left "
        "as it is: choose another output.path",
        path_));
  throw UsageError(
      fmt::format("output.path: cannot create '{}': {}", path_, std::strerror(err)));
}

}  // namespace cohort::metrics
