// `cohort attack-privacy`: the inference attacks of docs/algorithms.md §6 against a configured
// problem (gradient inversion, Note [Gradient inversion]) or a finished run's final model
// (membership inference by loss threshold, Note [Membership AUC]).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cohort {

struct AttackPrivacyOptions {
  // invert
  std::string config;
  std::vector<std::string> overrides;
  int client = 0;
  long long batch = 1;
  std::string out;
  // membership
  std::string run;
  long long samples = 2000;
};

void add_attack_privacy_command(CLI::App& app, AttackPrivacyOptions& o);
// Runs the chosen attack, prints its result and writes its file. Returns the exit code; throws
// UsageError for bad values.
int run_attack_privacy_command(const CLI::App& app, const AttackPrivacyOptions& o);

}  // namespace cohort
