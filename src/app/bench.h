// `cohort bench ...`: benchmark programs (never timed unit tests).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace cohort {

struct BenchOptions {
  std::string what = "memory";  // memory | compress | aggregate | sum | exchange | train
  double megabytes = 256;       // memory: per array (also the bandwidth reference of compress)
  int repeats = 5;
  std::string json;                     // optional JSON copy of the results
  std::string sizes = "1e5,1e6,1.1e7";  // compress, aggregate: message sizes d
  // compress: PowerSGD with error feedback on these layers (rows x cols) at these ranks; with
  // powersgd_only, no other compressor.
  std::string powersgd_shapes = "512x4608,3125x3520";
  std::string powersgd_ranks = "1,2,4,8";
  bool powersgd_only = false;
  std::string clients = "10,25,100";    // aggregate: message counts n
  std::string threads = "1";            // aggregate: thread counts (blocks of coordinates)
  double size = 1.1e7;                  // exchange: message size d
  int np = 0;                           // exchange: ranks to relaunch under (0: as launched)
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

// `cohort bench sum`: adding messages into the deterministic sum and reading it, per ISA path,
// beside float32 sums, the 128-bit exact sums and the memory bandwidth (app/bench_sum.cpp).
int run_sum_bench(const BenchOptions& o);
// `cohort bench exchange` (collective, MPI initialised): the reduce plan's exchange, exact and
// float, against MPI_Allreduce of the same float32 vector (app/bench_sum.cpp).
int run_exchange_bench(const BenchOptions& o);

// `cohort bench train`: one thread's training throughput of cnn_mnist, lenet5, resnet20 and the
// quickstart MLP at batch 32, and of cnn_mnist's layers, beside the sgemm rate (bench_train.cpp).
int run_train_bench(const BenchOptions& o);

// Shared by the benchmarks: "1e5,1e6" -> sizes; a fixed N(0, 1) message.
std::vector<std::int64_t> parse_sizes(const std::string& text);
std::vector<float> gaussian_message(std::int64_t n);

}  // namespace cohort
