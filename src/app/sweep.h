// `cohort sweep`: expands a sweep file (a base config plus grid / zip / seed axes over dotted
// keys) into one resolved, validated config per run, a manifest, and a launcher (local process
// pool or a SLURM job array). Both launchers skip a run only when its results file says
// `completed` and stores the config the sweep resolves for it now; a run another process is
// writing is left alone.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cohort {

struct SweepCommandOptions {
  std::string sweep;
  std::string out;
  std::string launcher = "local";  // local | slurm | none
  bool submit = false;
  int jobs = 0;  // local: runs at once; 0 = the sweep file's local.jobs (default 1)
};

void add_sweep_command(CLI::App& app, SweepCommandOptions& o);
// Returns the exit code (0: all runs completed or launched; 1: some run failed; 130: a signal
// stopped the local launcher). Throws UsageError for a bad sweep file, a run whose config is
// invalid (naming the run and key), a directive value with a control character (naming the
// key), or an --out that another sweep is using.
int run_sweep_command(const SweepCommandOptions& o);

// Reads a sweep file and resolves every run it expands to (runs placed under `out`), with the
// checks run_sweep_command makes before it writes anything; returns each run's resolved config
// as YAML text, in run order. Writes nothing. Throws UsageError as run_sweep_command does.
std::vector<std::string> resolve_sweep_file(const std::string& sweep_path, const std::string& out);

}  // namespace cohort
