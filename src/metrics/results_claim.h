// Who may write a results file, and what is already there (Note [Results file ownership]).
//
// Note [Results file ownership]: a results path is written only by the process that holds an
// exclusive flock on the sidecar `PATH.lock`, taken before the path is looked at. The holder
// then inspects PATH: nothing there is fine; a cohort results file (an HDF5 file whose root
// carries both `status` and `config`; every file ResultsFile writes has both from its creation)
// is replaced only when the caller asked for it (`cohort run --overwrite`); anything else is
// never touched, with one exception: an HDF5 file that HDF5 cannot open (`damaged`: the
// signature is there but not a readable file, what a results file killed mid-flush by a cohort
// older than Note [Crash-consistent results file] looks like) is replaced by a `--resume` that
// found a checkpoint of the same config in PATH.checkpoints, since that checkpoint shows the
// file was this run's own (kReplaceDamaged); a file without the HDF5 signature never is. The
// new file is built as `PATH.partial` and renamed over PATH once it carries
// its attributes, so PATH is never truncated: until the rename it still holds the old results
// (or nothing). The lock file is removed when the claim ends.
#pragma once

#include <string>

namespace cohort::metrics {

// What lies at a results path.
struct ResultsFileInfo {
  enum class Kind {
    kMissing,  // nothing at the path
    kResults,  // a cohort results file: status and config below
    kOther,    // a directory, a file that is not HDF5, or HDF5 without cohort's attributes
  };
  Kind kind = Kind::kMissing;
  bool in_use = false;  // another process holds PATH.lock (then kind is not inspected: kMissing)
  bool damaged = false; // kOther: the HDF5 signature, but HDF5 cannot open the file
  std::string status;   // root attribute `status` (kResults)
  std::string config;   // root attribute `config` (kResults)
};

// Looks at the path without taking or creating its lock.
ResultsFileInfo inspect_results_file(const std::string& path);

// What `cohort validate` checks of output.path: throws the UsageError a run would raise for a
// path another process is writing or a file that is not a results file; for an existing results
// file returns what a run without --overwrite or --resume would say ("" otherwise).
std::string check_results_path(const std::string& path);

// What to do with an existing cohort results file at the path.
// kReplaceDamaged: as kReplace, and a `damaged` file is replaced too (a resume from a
// checkpoint of the same config, Note [Results file ownership]).
enum class ExistingResults { kRefuse, kReplace, kReplaceDamaged };

// The exclusive right to write one results path, held until destruction. The constructor
// creates the parent directories, takes PATH.lock and checks what is at PATH; it throws
// UsageError naming output.path when another process holds the lock, when PATH is not a cohort
// results file, or when it is one and `existing` is kRefuse.
class ResultsClaim {
 public:
  ResultsClaim(const std::string& path, ExistingResults existing);
  ~ResultsClaim();
  ResultsClaim(ResultsClaim&& other) noexcept;
  ResultsClaim& operator=(ResultsClaim&&) = delete;
  ResultsClaim(const ResultsClaim&) = delete;
  ResultsClaim& operator=(const ResultsClaim&) = delete;

  const std::string& path() const { return path_; }
  // True when PATH held a cohort results file that the new file will replace.
  bool replaces() const { return replaces_; }
  // Moves `partial` (a file in PATH's directory) to PATH: over the old results file when
  // replaces(), otherwise only if PATH still does not exist. Throws UsageError if it does.
  void publish(const std::string& partial) const;

 private:
  std::string path_;
  int lock_fd_ = -1;
  bool replaces_ = false;
};

}  // namespace cohort::metrics
