// Checkpoint files: the run state after a round, written atomically, read back for --resume.
//
// Note [Checkpoints]
// A checkpoint holds everything a run needs to continue as if it had never stopped: the number
// of completed rounds, the global model, the server optimizer's state, the downlink's copy of
// the model, the sums' scales, PowerSGD's warm start, the robust rule's state, every client's
// state (error memory, compressor state, worker momentum; one row per client id, gathered from
// the ranks that own them) and the rows the results file holds so far. Randomness needs no
// state: every stream is keyed by (seed, round, client, purpose). So a run stopped after round
// r and resumed, at any rank count, gives bitwise the same rows and final model as the run that
// never stopped.
//
// The file is cohort's own binary format, not HDF5, so that a damaged or hostile file can only
// fail a check: a magic line, a format number, a text header (cohort version, git revision,
// round), the resolved config, the state's bytes, and a CRC-32 of everything before it. Every
// length is checked against the file's size before it is used. Rank 0 writes it as a temporary
// file in the checkpoint directory, fsyncs it, renames it to round-NNNNNNNN.ckpt and fsyncs the
// directory, so a crash mid-write leaves the previous checkpoints intact; then it removes all but
// the newest `checkpoint.keep`.
//
// Resuming takes the newest checkpoint that passes its checks; a damaged one is skipped with a
// warning. A checkpoint from another cohort version, or from a config that differs in a key
// other than rounds, clients.threads, output.* and checkpoint.*, is refused with the differing
// keys named.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/state.h"

namespace cohort::metrics {

struct CheckpointOptions {
  long long every = 0;  // rounds between checkpoints; 0: none (except on preemption: none either)
  std::string dir;      // checkpoint.path, or output.path + ".checkpoints"
  int keep = 2;
  static CheckpointOptions from_config(const Config& cfg);
};

// Writes the state after `round` completed rounds; returns the file's path. Throws
// std::runtime_error when the directory or file cannot be written.
std::string write_checkpoint(const CheckpointOptions& o, const StateBundle& state,
                             long long round, const std::string& config_text);

struct LoadedCheckpoint {
  StateBundle state;
  long long round = 0;
  std::string path;
  std::vector<std::string> warnings;  // damaged newer checkpoints that were skipped
};

// The newest valid checkpoint in o.dir for this config; nullopt when there is none (warnings
// about damaged files then go to stderr). Throws UsageError when the newest readable checkpoint
// is from another version or another config (naming the keys).
std::optional<LoadedCheckpoint> read_newest_checkpoint(const CheckpointOptions& o,
                                                       const Config& cfg);

// Reads one file (the checks of Note [Checkpoints]); throws std::runtime_error saying what is
// wrong with it.
LoadedCheckpoint read_checkpoint_file(const std::string& path, std::string* config_text,
                                      std::string* version);

// The keys whose values differ between two resolved configs, ignoring rounds, clients.threads,
// output.* and checkpoint.*: "key (a here, b in the checkpoint)".
std::vector<std::string> config_differences(const std::string& mine, const std::string& theirs);

}  // namespace cohort::metrics
