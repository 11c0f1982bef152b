// `cohort bench ...`: benchmark programs (never timed unit tests).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace cohort {

struct BenchOptions {
  std::string what = "memory";
  double megabytes = 256;  // per array
  int repeats = 5;
  std::string json;        // optional JSON copy of the results
};

void add_bench_options(CLI::App& bench, BenchOptions& o);
int run_bench(const BenchOptions& o);

// STREAM-like single-thread memory bandwidth (GB/s): a sum over one array (read) and the triad
// a = b + s c (two reads, one write; write-allocate not counted, as in STREAM).
struct MemoryBandwidth {
  double read_gbs = 0, triad_gbs = 0;
};
MemoryBandwidth measure_memory_bandwidth(double megabytes, int repeats);

}  // namespace cohort
