// The results file: one HDF5 file per run, written by rank 0 only (serial HDF5).
//
// Layout (docs/architecture.md): root attributes (config, seed, version, git_revision, versions,
// ranks, status, message); /rounds/<metric>: one extendible 1-D dataset per metric, one entry
// per round, published every round so a killed run leaves a readable file (Note
// [Crash-consistent results file]); /clients/<name>:
// per-client data; /model/<layer>: the final model when asked.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/state.h"
#include "metrics/results_claim.h"

namespace cohort::metrics {

class ResultsFile {
 public:
  // Creates the file under `claim` (Note [Results file ownership]): built as PATH.partial with
  // the root attributes `config` and `status` = running, then renamed to PATH. The claim (and
  // its lock) is held until the file is closed. Throws UsageError when the path cannot be
  // written.
  ResultsFile(ResultsClaim claim, const std::string& config);
  // Claims the path first; an existing cohort results file is handled as `existing` says, any
  // other existing file is refused.
  explicit ResultsFile(const std::string& path,
                       ExistingResults existing = ExistingResults::kReplace,
                       const std::string& config = "");
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  const std::string& path() const { return path_; }
  void set_attribute(const std::string& name, const std::string& value);
  void set_attribute(const std::string& name, double value);
  void set_attribute(const std::string& name, std::int64_t value);
  // status: running | completed | diverged | failed | preempted | budget_exhausted;
  // message explains.
  void set_status(const std::string& status, const std::string& message = "");

  // Appends one value to /rounds/<name> (created on first use; NaN marks "not measured this
  // round"). Every metric of a round must be appended before flush().
  void append(const std::string& name, double value);
  void append(const std::string& name, std::int64_t value);
  // Publishes the file as it is now: PATH becomes a complete HDF5 file with everything written
  // so far, atomically (Note [Crash-consistent results file]). With `always` false (the
  // per-round call) it may wait until publishing costs at most a tenth of the run's time.
  void flush(bool always = true);
  // Appends one row to the extendible rounds x clients matrix /clients/<name>.
  void append_client_row(const std::string& name, const std::vector<std::int64_t>& row);

  // Every /rounds series and /clients row matrix written so far, into a checkpoint's state
  // (Note [Checkpoints]); import_rows appends them to a new file, as a resumed run's first rows.
  void export_rows(StateBundle& b) const;
  void import_rows(const StateBundle& b);

  void write_vector(const std::string& dataset_path, const std::vector<std::int64_t>& v);
  void write_matrix(const std::string& dataset_path, const float* data, std::int64_t rows,
                    std::int64_t cols);
  void write_tensor3(const std::string& dataset_path, const float* data, std::int64_t n,
                     std::int64_t rows, std::int64_t cols);
  // A 1-D float dataset (per-client values such as /clients/accuracy).
  void write_floats(const std::string& dataset_path, const std::vector<float>& v) {
    write_floats(dataset_path, v.data(), {static_cast<hsize_t>(v.size())});
  }

 private:
  hid_t series(const std::string& name, hid_t type);
  void append_raw(const std::string& name, hid_t type, const void* value);
  hid_t group(const std::string& path);
  void write_floats(const std::string& dataset_path, const float* data,
                    const std::vector<hsize_t>& dims);

  void close_file();

  std::string path_;
  std::optional<ResultsClaim> claim_;
  hid_t file_ = -1;
  std::map<std::string, hid_t> series_;
  std::map<std::string, std::int64_t> lengths_;
  std::map<std::string, bool> integer_;  // /rounds series of int64 (else double)
  std::map<std::string, hid_t> client_rows_;
  std::map<std::string, std::int64_t> client_row_count_;
  std::vector<unsigned char> image_;  // the last published image (reused buffer)
  bool published_ = false;            // PATH holds an image of this file
  bool dirty_ = false;                // changed since the last flush()
  double published_at_ = 0, publish_cost_ = 0;  // seconds (steady clock) of the last publish
};

std::string hdf5_version();

}  // namespace cohort::metrics
