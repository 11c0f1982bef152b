#include "app/bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace cohort {

void add_bench_options(CLI::App& bench, BenchOptions& o) {
  bench.add_option("what", o.what, "benchmark: memory (STREAM-like bandwidth)")
      ->check(CLI::IsMember({"memory"}));
  bench.add_option("--megabytes", o.megabytes, "array size in MB")->check(CLI::Range(1.0, 65536.0));
  bench.add_option("--repeats", o.repeats, "repetitions (best is reported)")->check(CLI::Range(1, 1000));
  bench.add_option("--json", o.json, "also write the results as JSON to this file");
}

MemoryBandwidth measure_memory_bandwidth(double megabytes, int repeats) {
  using Clock = std::chrono::steady_clock;
  const std::size_t n = static_cast<std::size_t>(megabytes * 1e6 / sizeof(double));
  std::vector<double> a(n, 1.0), b(n, 2.0), c(n, 0.5);
  MemoryBandwidth best;
  volatile double sink = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += a[i];
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    sink = sink + s;
    best.read_gbs = std::max(best.read_gbs, n * sizeof(double) / dt / 1e9);
    t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0 * c[i];
    dt = std::chrono::duration<double>(Clock::now() - t0).count();
    best.triad_gbs = std::max(best.triad_gbs, 3 * n * sizeof(double) / dt / 1e9);
  }
  return best;
}

int run_bench(const BenchOptions& o) {
  const MemoryBandwidth bw = measure_memory_bandwidth(o.megabytes, o.repeats);
  const unsigned cores = std::thread::hardware_concurrency();
  const double mem_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                         static_cast<double>(sysconf(_SC_PAGE_SIZE)) / (1 << 30);
  fmt::print("# cohort bench memory: {} cores, {:.1f} GiB RAM, arrays {:.0f} MB, best of {}\n",
             cores, mem_gib, o.megabytes, o.repeats);
  fmt::print("{:<10} {:>10}\n", "kernel", "GB/s");
  fmt::print("{:<10} {:>10.2f}\n", "read", bw.read_gbs);
  fmt::print("{:<10} {:>10.2f}\n", "triad", bw.triad_gbs);
  if (!o.json.empty()) {
    std::ofstream js(o.json);
    js << fmt::format(R"({{"cores": {}, "mem_gib": {:.2f}, "read_gbs": {:.3f}, "triad_gbs": {:.3f}}})",
                      cores, mem_gib, bw.read_gbs, bw.triad_gbs)
       << "\n";
  }
  return 0;
}

}  // namespace cohort
