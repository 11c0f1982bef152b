// `cohort aggregate`: applies a configured robust aggregator to vectors a user supplies and
// writes the result and what the rule selected, so the rules can be tested on one's own
// gradients and cross-checked against other libraries.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cohort {

struct AggregateCommandOptions {
  std::string config;
  std::string input;
  std::string output;
  std::string dataset = "vectors";
  int round = 0;
  std::vector<std::string> overrides;
};

void add_aggregate_command(CLI::App& app, AggregateCommandOptions& o);
int run_aggregate_command(const AggregateCommandOptions& o);

}  // namespace cohort
