// `cohort compress`: applies a configured compressor, with its real encoding, to vectors a user
// supplies, so compressors can be checked on one's own gradients and against other libraries.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace cohort {

struct CompressCommandOptions {
  std::string config;
  std::string input;
  std::string output;
  std::string dataset = "vectors";
  std::vector<std::string> overrides;
};

void add_compress_command(CLI::App& app, CompressCommandOptions& o);
// Returns the exit code; throws UsageError for bad input.
int run_compress_command(const CompressCommandOptions& o);

}  // namespace cohort
