// `cohort privacy`: the RDP accountant of docs/algorithms.md §6 as a command, so that a noise
// multiplier or a privacy budget can be planned before a run (Note [RDP accountant]).
#pragma once

#include <CLI/CLI.hpp>

namespace cohort {

struct PrivacyCommandOptions {
  double q = 0, sigma = -1, delta = 1e-5, target = 0;
  long long steps = 0;
};

void add_privacy_command(CLI::App& app, PrivacyCommandOptions& o);
// Prints epsilon and its order (or, with --target-epsilon, the noise multiplier that meets it).
// Returns the exit code; throws UsageError for bad values.
int run_privacy_command(const PrivacyCommandOptions& o);

}  // namespace cohort
