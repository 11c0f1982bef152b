// `cohort bench ...`: benchmark programs (never timed unit tests).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace cohort {

struct BenchOptions {
  std::string what = "memory";  // memory | compress | aggregate
  double megabytes = 256;       // memory: per array (also the bandwidth reference of compress)
  int repeats = 5;
  std::string json;                     // optional JSON copy of the results
  std::string sizes = "1e5,1e6,1.1e7";  // compress, aggregate: message sizes d
  std::string clients = "10,25,100";    // aggregate: message counts n
  std::string threads = "1";            // aggregate: thread counts (blocks of coordinates)
};

void add_bench_options(CLI::App& bench, BenchOptions& o);
int run_bench(const BenchOptions& o);

// STREAM-like single-thread memory bandwidth (GB/s): a sum over one array (read) and the triad
// a = b + s c (two reads, one write; write-allocate not counted, as in STREAM).
struct MemoryBandwidth {
  double read_gbs = 0, triad_gbs = 0;
};
MemoryBandwidth measure_memory_bandwidth(double megabytes, int repeats);

// `cohort bench compress`: encode and decode times of every compressor (app/bench.cpp).
int run_compress_bench(const BenchOptions& o);

// `cohort bench aggregate`: time of every robust aggregator on n x d float32 messages.
int run_aggregate_bench(const BenchOptions& o);

}  // namespace cohort
