// The local launcher of `cohort sweep`: a pool of runs on this machine, each
// `[mpirun -np P] cohort run --overwrite DIR/config.yaml` with its log in DIR/log.txt, stopped
// together on a signal (Note [Stopping a local sweep]).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cohort {

struct LocalRun {
  std::string id;
  std::filesystem::path dir;  // holds config.yaml; gets log.txt and metrics.h5
};

// Runs `jobs` at a time with `np` ranks each, printing a progress line per finished run and the
// failed ones at the end. Returns 0 when every run completed, 1 when some did not, 130 when a
// signal stopped the sweep (after every started run has exited).
int launch_local(const std::vector<LocalRun>& runs, int np, int jobs);

}  // namespace cohort
