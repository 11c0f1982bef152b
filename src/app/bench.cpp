#include "app/bench.h"

#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "compress/compressor.h"
#include "compress/philox_bulk.h"
#include "compress/powersgd.h"
#include "core/build_info.h"
#include "core/errors.h"
#include "core/rng.h"
#include "robust/aggregator.h"
#include "robust/gm.h"
#include "robust/thread_gather.h"

namespace cohort {

void add_bench_options(CLI::App& bench, BenchOptions& o) {
  bench
      .add_option("what", o.what,
                  "benchmark: memory (STREAM-like bandwidth) | compress (encode/decode speed) | "
                  "aggregate (robust aggregators) | sum (deterministic message sums, every ISA "
                  "path) | exchange (the reduce plan's exchange against a raw MPI_Allreduce; run "
                  "it under mpirun, or give --np) | train (models' training throughput on one "
                  "thread beside the sgemm rate)")
      ->check(CLI::IsMember({"memory", "compress", "aggregate", "sum", "exchange", "train"}));
  bench.add_option("--megabytes", o.megabytes, "array size in MB")->check(CLI::Range(1.0, 65536.0));
  bench.add_option("--repeats", o.repeats, "repetitions (best is reported)")
      ->check(CLI::Range(1, 1000));
  bench.add_option("--json", o.json, "also write the results as JSON to this file");
  bench.add_option("--sizes", o.sizes,
                   "compress, aggregate: comma-separated message sizes d (e.g. 1e5,1e6)");
  bench.add_option("--powersgd-shapes", o.powersgd_shapes,
                   "compress: PowerSGD layers ROWSxCOLS, comma-separated (error feedback rows)");
  bench.add_option("--powersgd-ranks", o.powersgd_ranks,
                   "compress: PowerSGD ranks r, comma-separated (error feedback rows)");
  bench.add_flag("--powersgd-only", o.powersgd_only, "compress: only the PowerSGD rows");
  bench.add_option("--clients", o.clients, "aggregate: comma-separated message counts n");
  bench.add_option("--size", o.size, "exchange: message size d")->check(CLI::Range(1.0, 1e10));
  bench.add_option("--np", o.np,
                   "exchange: ranks; when started as one process, cohort relaunches itself "
                   "under mpiexec with this many")
      ->check(CLI::Range(1, 4096));
  bench.add_option("--threads", o.threads,
                   "aggregate: comma-separated thread counts; with t > 1 each thread runs the rule "
                   "on a block of coordinates, as a rank does under the shard plan");
}

MemoryBandwidth measure_memory_bandwidth(double megabytes, int repeats) {
  using Clock = std::chrono::steady_clock;
  const std::size_t n = static_cast<std::size_t>(megabytes * 1e6 / sizeof(double));
  std::vector<double> a(n, 1.0), b(n, 2.0), c(n, 0.5);
  MemoryBandwidth best;
  volatile double sink = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    // Eight streams read at once (as the rules read n rows at once), 16 independent partial
    // sums: one stream is bound by the prefetcher (~6 GB/s here) and one running sum by the
    // add latency, neither by memory.
    double acc[16] = {};
    const std::size_t per = n / 8;
    for (std::size_t i = 0; i + 2 <= per; i += 2)
      for (int j = 0; j < 8; ++j) {
        acc[2 * j] += a[j * per + i];
        acc[2 * j + 1] += a[j * per + i + 1];
      }
    double s = 0;
    for (double v : acc) s += v;
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

std::vector<std::int64_t> parse_sizes(const std::string& text) {
  std::vector<std::int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    double x = 0;
    try {
      x = std::stod(item);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--sizes: '{}' is not a number", item));
    }
    require_usage(x >= 1 && x <= 1e10, fmt::format("--sizes: {} is not a size (1 .. 1e10)", item));
    out.push_back(std::llround(x));
  }
  require_usage(!out.empty(), "--sizes: no sizes given");
  return out;
}

std::vector<float> gaussian_message(std::int64_t n) {
  Rng rng(1, 0, 0, Purpose::kTest);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

int run_bench(const BenchOptions& o) {
  if (o.what == "compress" || o.what == "aggregate" || o.what == "sum" || o.what == "train") {
    try {
      return o.what == "compress"    ? run_compress_bench(o)
             : o.what == "aggregate" ? run_aggregate_bench(o)
             : o.what == "train"     ? run_train_bench(o)
                                     : run_sum_bench(o);
    } catch (const UsageError& e) {
      fmt::print(stderr, "cohort: error: {}\n", e.what());
      return kExitUsage;
    } catch (const std::exception& e) {
      fmt::print(stderr, "cohort: bench failed: {}\n", e.what());
      return 1;
    }
  }
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
    js << fmt::format(
              R"({{"cores": {}, "mem_gib": {:.2f}, "read_gbs": {:.3f}, "triad_gbs": {:.3f}}})",
              cores, mem_gib, bw.read_gbs, bw.triad_gbs)
       << "\n";
  }
  return 0;
}

// ---- cohort bench compress ------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

struct CompressRow {
  std::string compressor;
  std::int64_t d = 0;
  double encode_ms = 0, decode_ms = 0, gbs = 0, bits_per_coord = 0, triad_share = 0;
};

template <class F>
double best_seconds(int repeats, F f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Times encode and decode of one compressor on one message; input GB/s counts the float32 message
// once for the pair.
CompressRow time_compressor(const std::string& label, const compress::Compressor& c,
                            const std::vector<float>& v,
                            const std::vector<compress::LayerShape>& layers, int repeats,
                            double triad_gbs) {
  // A new round for every encode: random-k then draws its index set each time, as the first
  // message of a round does; the decode that follows reuses the set of the encode before it,
  // as the exchange does (it decodes each message right after encoding it).
  std::uint32_t round = 0;
  compress::MessageContext ctx{1, 0, 0};
  std::vector<float> state(static_cast<std::size_t>(compress::total_state_floats(c, layers)), 0.0f);
  std::vector<float> out(v.size());
  compress::Encoded e;
  const double te = best_seconds(repeats, [&] {
    std::fill(state.begin(), state.end(), 0.0f);
    ctx.round = round++;
    e = compress::encode(c, v, layers, ctx, state);
  });
  const double td = best_seconds(repeats, [&] { compress::decode(c, e, layers, ctx, out); });
  CompressRow row;
  row.compressor = label;
  row.d = static_cast<std::int64_t>(v.size());
  row.encode_ms = te * 1e3;
  row.decode_ms = td * 1e3;
  row.gbs = 4.0 * static_cast<double>(v.size()) / (te + td) / 1e9;
  row.bits_per_coord = static_cast<double>(e.bits) / static_cast<double>(v.size());
  row.triad_share = row.gbs / triad_gbs;
  return row;
}

void print_row(const CompressRow& r) {
  fmt::print("{:<34} {:>10} {:>10.3f} {:>10.3f} {:>8.2f} {:>11.3f} {:>7.0f}%\n", r.compressor, r.d,
             r.encode_ms, r.decode_ms, r.gbs, r.bits_per_coord, 100 * r.triad_share);
  std::fflush(stdout);
}

// A compressor's encoding without its fused error feedback: encode_with_feedback then runs the
// definition step by step (p = v + e, encode, decode, e = p - decoded), as the exchange did
// before PowerSGD fused it.
class StepByStep final : public compress::Compressor {
 public:
  explicit StepByStep(const compress::Compressor& c) : c_(c) {}
  std::string name() const override { return c_.name(); }
  void encode_layer(std::span<const float> v, const compress::LayerShape& layer,
                    const compress::MessageContext& ctx, std::span<float> state, Rng& rng,
                    compress::BitWriter& out) const override {
    c_.encode_layer(v, layer, ctx, state, rng, out);
  }
  void decode_layer(compress::BitReader& in, const compress::LayerShape& layer,
                    const compress::MessageContext& ctx, std::span<float> out) const override {
    c_.decode_layer(in, layer, ctx, out);
  }
  std::int64_t state_floats(const compress::LayerShape& layer) const override {
    return c_.state_floats(layer);
  }

 private:
  const compress::Compressor& c_;
};

// "512x4608,3125x3520" -> (rows, cols) pairs.
std::vector<std::pair<std::int64_t, std::int64_t>> parse_shapes(const std::string& text) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto x = item.find('x');
    long long rows = 0, cols = 0;
    std::size_t used_r = 0, used_c = 0;
    try {
      if (x != std::string::npos) {
        rows = std::stoll(item.substr(0, x), &used_r);
        cols = std::stoll(item.substr(x + 1), &used_c);
      }
    } catch (const std::exception&) {
      rows = 0;
    }
    require_usage(x != std::string::npos && used_r == x && used_c == item.size() - x - 1 &&
                      rows >= 2 && cols >= 2 && rows * cols <= 1'000'000'000LL,
                  fmt::format("--powersgd-shapes: '{}' is not ROWSxCOLS (each at least 2)", item));
    out.emplace_back(rows, cols);
  }
  require_usage(!out.empty(), "--powersgd-shapes: no shapes given");
  return out;
}

std::vector<int> parse_ranks(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    int r = 0;
    try {
      r = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require_usage(used > 0 && used == item.size() && r >= 1 && r <= 1024,
                  fmt::format("--powersgd-ranks: '{}' is not a rank (1 .. 1024)", item));
    out.push_back(r);
  }
  require_usage(!out.empty(), "--powersgd-ranks: no ranks given");
  return out;
}

// PowerSGD per client with error feedback and warm start, one layer: what the exchange does for
// one client (p = u + e, the power step, the decoded message, e = p - decoded), fused
// (Note [PowerSGD passes]) and step by step. GB/s counts the layer's float32 values once.
void powersgd_feedback_rows(const std::vector<std::pair<std::int64_t, std::int64_t>>& shapes,
                            const std::vector<int>& ranks, int repeats, double triad_gbs,
                            std::vector<CompressRow>& rows) {
  for (const auto& [rows_m, cols_m] : shapes) {
    const std::int64_t d = rows_m * cols_m;
    const std::vector<float> u = gaussian_message(d);
    const std::vector<compress::LayerShape> layers = {compress::LayerShape{0, rows_m, cols_m}};
    for (const int rank : ranks) {
      const compress::powersgd::PowerSgdCompressor fused(rank, /*warm_start=*/true);
      const StepByStep step_by_step(fused);
      for (const compress::Compressor* c :
           {static_cast<const compress::Compressor*>(&fused),
            static_cast<const compress::Compressor*>(&step_by_step)}) {
        // The step-by-step definition forms p in its message buffer: each variant gets a copy.
        std::vector<float> v = u, e(static_cast<std::size_t>(d), 0.0f), decoded(e.size());
        std::vector<float> state(static_cast<std::size_t>(compress::total_state_floats(*c, layers)),
                                 0.0f);
        compress::MessageContext ctx{1, 0, 0};
        compress::Encoded enc;
        float max_abs = 0;
        const double t = best_seconds(repeats, [&] {
          enc = compress::encode_with_feedback(*c, v, e, layers, ctx, state, decoded, &max_abs);
          ++ctx.round;
        });
        CompressRow r;
        r.compressor = fmt::format("powersgd ef {} r={} {}x{}", c == &fused ? "fused" : "steps",
                                   rank, rows_m, cols_m);
        r.d = d;
        r.encode_ms = t * 1e3;
        r.gbs = 4.0 * static_cast<double>(d) / t / 1e9;
        r.bits_per_coord = static_cast<double>(enc.bits) / static_cast<double>(d);
        r.triad_share = r.gbs / triad_gbs;
        rows.push_back(r);
        print_row(r);
      }
    }
  }
  fmt::print(
      "# powersgd ef rows: per client with error feedback and warm start, one layer: encode, "
      "decoded message and error update in the encode column; fused = Note [PowerSGD passes], "
      "steps = p = u + e, encode, decode, e = p - decoded; PowerSGD kernels: {}\n",
      compress::powersgd::kernel_isa());
}

}  // namespace

int run_compress_bench(const BenchOptions& o) {
  const std::vector<std::int64_t> sizes = parse_sizes(o.sizes);
  const auto powersgd_shapes = parse_shapes(o.powersgd_shapes);
  const std::vector<int> powersgd_ranks = parse_ranks(o.powersgd_ranks);
  // Every encode returns a fresh byte vector; glibc serves large ones with mmap and unmaps them
  // on free, so each would pay first-touch page faults (about 0.5 ms per MB on the VMs we use),
  // which is the allocator's cost, not the compressor's. Keep freed memory in the heap instead.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const MemoryBandwidth bw = measure_memory_bandwidth(o.megabytes, 3);
  const unsigned cores = std::thread::hardware_concurrency();
  const double mem_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                         static_cast<double>(sysconf(_SC_PAGE_SIZE)) / (1 << 30);
  fmt::print("# cohort bench compress: cohort {} ({}), 1 thread, {} cores, {:.1f} GiB RAM\n",
             kVersion, kGitRevision, cores, mem_gib);
  fmt::print(
      "# memory bandwidth (this program, {:.0f} MB arrays): read {:.2f} GB/s, triad {:.2f} "
      "GB/s; Philox kernel: {}; PowerSGD kernels: {}\n",
      o.megabytes, bw.read_gbs, bw.triad_gbs, compress::philox_isa(),
      compress::powersgd::kernel_isa());
  fmt::print(
      "# best of {} repeats; GB/s = float32 input bytes / (encode + decode time); "
      "% = share of triad; malloc keeps freed memory (M_MMAP_MAX 0)\n",
      o.repeats);
  fmt::print("{:<34} {:>10} {:>10} {:>10} {:>8} {:>11} {:>8}\n", "compressor", "d", "encode ms",
             "decode ms", "GB/s", "bits/coord", "triad");

  struct Config {
    std::string label;
    compress::CompressorOptions opts;
  };
  auto make_opts = [](const std::string& name) {
    compress::CompressorOptions c;
    c.name = name;
    return c;
  };
  std::vector<Config> configs;
  configs.push_back({"none", make_opts("none")});
  configs.push_back({"sign scale=none", make_opts("sign")});
  configs.push_back({"sign scale=l1", make_opts("sign")});
  configs.back().opts.scale = "l1";
  configs.push_back({"topk ratio=0.01", make_opts("topk")});
  configs.push_back({"randk ratio=0.01", make_opts("randk")});
  configs.push_back({"qsgd s=4 fixed", make_opts("qsgd")});
  configs.push_back({"qsgd s=16 fixed", make_opts("qsgd")});
  configs.back().opts.levels = 16;
  configs.push_back({"qsgd s=4 elias", make_opts("qsgd")});
  configs.back().opts.coding = "elias";
  configs.push_back({"qsgd s=4 bucket=512", make_opts("qsgd")});  // the QSGD paper's buckets
  configs.back().opts.bucket = 512;

  std::vector<CompressRow> rows;
  for (std::int64_t d : o.powersgd_only ? std::vector<std::int64_t>{} : sizes) {
    const std::vector<float> v = gaussian_message(d);
    const std::vector<compress::LayerShape> layers = {compress::LayerShape{0, d, 1}};
    for (const auto& cfg : configs) {
      const auto c = compress::make_compressor(cfg.opts);
      rows.push_back(time_compressor(cfg.label, *c, v, layers, o.repeats, bw.triad_gbs));
      print_row(rows.back());
    }
    // The bulk Philox generator alone (QSGD's and rand-k's random bits): d 32-bit words, timed
    // under encode, GB/s of words written.
    std::vector<std::uint32_t> words(static_cast<std::size_t>(d + 3) / 4 * 4);
    const double tr = best_seconds(o.repeats, [&] {
      compress::philox_blocks(1, 2, 3, Purpose::kCompression, 0, words.size() / 4, words.data());
    });
    CompressRow r;
    r.compressor = "philox (bits only)";
    r.d = d;
    r.encode_ms = tr * 1e3;
    r.gbs = 4.0 * static_cast<double>(words.size()) / tr / 1e9;
    r.bits_per_coord = 32;
    r.triad_share = r.gbs / bw.triad_gbs;
    rows.push_back(r);
    print_row(r);
  }

  // PowerSGD per client, rank 4, on one 512 x 4608 layer, and its two products alone.
  {
    const std::int64_t rows_m = 512, cols_m = 4608;
    const int rank = 4;
    const std::vector<float> m = gaussian_message(rows_m * cols_m);
    const std::vector<compress::LayerShape> layers = {compress::LayerShape{0, rows_m, cols_m}};
    compress::powersgd::PowerSgdCompressor c(rank, /*warm_start=*/false);
    rows.push_back(
        time_compressor("powersgd per_client r=4", c, m, layers, o.repeats, bw.triad_gbs));
    print_row(rows.back());
    std::vector<float> q(static_cast<std::size_t>(cols_m * rank)),
        p(static_cast<std::size_t>(rows_m * rank));
    compress::powersgd::initial_q(compress::MessageContext{1, 0, 0}, layers[0], rank, q.data());
    const double tp = best_seconds(o.repeats, [&] {
      compress::powersgd::multiply_p(m.data(), q.data(), rows_m, cols_m, rank, p.data());
    });
    const double tq = best_seconds(o.repeats, [&] {
      compress::powersgd::multiply_q(m.data(), p.data(), rows_m, cols_m, rank, q.data());
    });
    CompressRow r;
    r.compressor = "powersgd M*Q + M^T*P only";
    r.d = rows_m * cols_m;
    r.encode_ms = tp * 1e3;  // the P product in the encode column, the Q product in the decode one
    r.decode_ms = tq * 1e3;
    r.gbs = 4.0 * static_cast<double>(r.d) / (tp + tq) / 1e9;
    r.bits_per_coord = 0;
    r.triad_share = r.gbs / bw.triad_gbs;
    rows.push_back(r);
    print_row(r);
  }
  fmt::print(
      "# powersgd rows: d = 512 x 4608; its products' row puts M Q under encode and "
      "M^T P under decode\n");
  powersgd_feedback_rows(powersgd_shapes, powersgd_ranks, o.repeats, bw.triad_gbs, rows);

  if (!o.json.empty()) {
    std::ofstream js(o.json);
    js << fmt::format(
        R"({{"cores": {}, "mem_gib": {:.2f}, "read_gbs": {:.3f}, "triad_gbs": {:.3f}, )"
        R"("philox": "{}", "powersgd_isa": "{}", "repeats": {}, "rows": [)",
        cores, mem_gib, bw.read_gbs, bw.triad_gbs, compress::philox_isa(),
        compress::powersgd::kernel_isa(), o.repeats);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      js << fmt::format(
          R"({}{{"compressor": "{}", "d": {}, "encode_ms": {:.4f}, "decode_ms": {:.4f}, )"
          R"("gbs": {:.4f}, "bits_per_coord": {:.4f}, "triad_share": {:.4f}}})",
          i == 0 ? "" : ", ", r.compressor, r.d, r.encode_ms, r.decode_ms, r.gbs, r.bits_per_coord,
          r.triad_share);
    }
    js << "]}\n";
  }
  return 0;
}

// ---- cohort bench aggregate -----------------------------------------------------------------

namespace {

struct AggregateRow {
  std::string rule;
  int threads = 1;
  int n = 0;
  std::int64_t d = 0;
  double ms = 0, gbs = 0, triad_share = 0, gflops = 0;
};

// Uniform floats in [-1, 1) from the bulk Philox stream (Gaussian draws would dominate the run).
std::vector<float> uniform_messages(std::int64_t count) {
  std::vector<float> v(static_cast<std::size_t>(count));
  std::vector<std::uint32_t> bits(1 << 16);
  std::uint32_t block = 0;
  for (std::size_t k0 = 0; k0 < v.size(); k0 += bits.size()) {
    compress::philox_blocks(1, 0, 0, Purpose::kTest, block, bits.size() / 4, bits.data());
    block += static_cast<std::uint32_t>(bits.size() / 4);
    const std::size_t len = std::min(bits.size(), v.size() - k0);
    for (std::size_t k = 0; k < len; ++k)
      v[k0 + k] = static_cast<float>(static_cast<double>(bits[k] >> 8) * 0x1.0p-23 - 1.0);
  }
  return v;
}

}  // namespace

// A comma-separated list of counts in 1 .. max, for a command-line option.
static std::vector<int> parse_counts(const std::string& text, const char* option, int max) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int n = 0;
    try {
      n = std::stoi(item);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("{}: '{}' is not a number", option, item));
    }
    require_usage(n >= 1 && n <= max,
                  fmt::format("{}: {} is not a count (1 .. {})", option, n, max));
    out.push_back(n);
  }
  require_usage(!out.empty(), fmt::format("{}: no counts given", option));
  return out;
}

int run_aggregate_bench(const BenchOptions& o) {
  const std::vector<std::int64_t> sizes = parse_sizes(o.sizes);
  const auto powersgd_shapes = parse_shapes(o.powersgd_shapes);
  const std::vector<int> powersgd_ranks = parse_ranks(o.powersgd_ranks);
  const std::vector<int> counts = parse_counts(o.clients, "--clients", 10000);
  const std::vector<int> thread_counts = parse_counts(o.threads, "--threads", 256);
  constexpr double kMaxInputBytes = 4e9;
  mallopt(M_MMAP_MAX, 0);  // as in bench compress: no first-touch faults of fresh scratch
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const MemoryBandwidth bw = measure_memory_bandwidth(o.megabytes, 3);
  const unsigned cores = std::thread::hardware_concurrency();
  fmt::print("# cohort bench aggregate: cohort {} ({}), {} cores; kernels: {}; thr = threads (t > 1: "
             "each runs the rule on a block of coordinates, as a rank does under the shard plan; "
             "zeno needs whole messages)\n",
             kVersion, kGitRevision, cores, robust::robust_isa());
  fmt::print(
      "# memory bandwidth (this program, {:.0f} MB arrays): read {:.2f} GB/s, triad {:.2f} GB/s\n",
      o.megabytes, bw.read_gbs, bw.triad_gbs);
  fmt::print(
      "# best of {} repeats; GB/s = n d 4 bytes of input / time; % = share of triad; f = b = "
      "max(1, (n-3)/4) (bucketing: the largest f its ceil(n/2) buckets allow); gm T=3, cclip L=1; "
      "GFLOP/s: the Gram product (n(n+1) d flops) of krum; "
      "inputs over {:.0f} GB skipped\n",
      o.repeats, kMaxInputBytes / 1e9);
  fmt::print("{:<22} {:>3} {:>5} {:>10} {:>10} {:>8} {:>7} {:>9}\n", "aggregator", "thr", "n", "d",
             "ms", "GB/s", "triad", "GFLOP/s");
  std::vector<AggregateRow> rows;
  for (int n : counts)
    for (std::int64_t d : sizes) {
      const double bytes = 4.0 * n * static_cast<double>(d);
      if (bytes > kMaxInputBytes) continue;
      const std::vector<float> data = uniform_messages(static_cast<std::int64_t>(n) * d);
      std::vector<int> clients(n);
      for (int i = 0; i < n; ++i) clients[i] = i;
      robust::Messages m;
      m.data = data.data();
      m.n = n;
      m.d = d;
      m.clients = clients;
      std::vector<float> x(static_cast<std::size_t>(d), 0.5f), out(static_cast<std::size_t>(d));
      robust::Context ctx;
      ctx.seed = 1;
      ctx.x = x.data();
      ctx.validation_loss = [d](const float* y) {  // a cheap quadratic: 0.5 ||y||^2
        double s = 0;
        for (std::int64_t k = 0; k < d; ++k) s += static_cast<double>(y[k]) * y[k];
        return 0.5 * s;
      };
      const int f = std::max(1, (n - 3) / 4);
      struct Config {
        std::string label;
        robust::AggregatorOptions opts;
        robust::GmPath gm_path = robust::GmPath::kAuto;  // gm: a forced path
        std::unique_ptr<robust::Aggregator> make() const {
          if (gm_path == robust::GmPath::kAuto) return robust::make_aggregator(opts);
          return std::make_unique<robust::GeometricMedian>(opts.iters, opts.nu, opts.init == "mean",
                                                           gm_path);
        }
      };
      std::vector<Config> configs;
      for (const char* name : {"cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan", "zeno"}) {
        robust::AggregatorOptions a;
        a.name = name;
        a.f = f;
        a.b = f;
        a.iters = a.name == "cclip" ? 1 : 3;
        configs.push_back({name, a});
      }
      configs.push_back({"krum+bucketing s=2", configs[2].opts});
      configs.back().opts.bucket = 2;
      configs.back().opts.f = std::max(0, ((n + 1) / 2 - 3) / 2);  // ceil(n/2) buckets >= 2f+3
      // gm on each of its two paths (Note [gm path choice]); the "gm" row takes the chosen one.
      configs.push_back({"gm gram path", configs[4].opts, robust::GmPath::kGram});
      configs.push_back({"gm direct path", configs[4].opts, robust::GmPath::kDirect});
      auto add_row = [&](const std::string& label, int threads, double t, double flops) {
        AggregateRow r{label, threads, n, d, t * 1e3, bytes / t / 1e9, 0, flops / t / 1e9};
        r.triad_share = r.gbs / bw.triad_gbs;
        rows.push_back(r);
        fmt::print("{:<22} {:>3} {:>5} {:>10} {:>10.3f} {:>8.2f} {:>6.0f}% {:>9}\n", r.rule,
                   r.threads, r.n, r.d, r.ms, r.gbs, 100 * r.triad_share,
                   flops > 0 ? fmt::format("{:.1f}", r.gflops) : std::string("-"));
        std::fflush(stdout);
      };
      for (int threads : thread_counts) {
        if (threads == 1) {
          volatile bool ok = true;
          const double t = best_seconds(o.repeats, [&] {
            for (int i = 0; i < n; ++i) ok = ok && robust::all_finite(m.row(i), d);
          });
          add_row("(finite scan)", 1, t, 0);
          for (const auto& cfg : configs) {
            auto rule = cfg.make();
            rule->check_inputs(n);
            robust::Report report;
            const double t =
                best_seconds(o.repeats, [&] { rule->aggregate(m, ctx, out.data(), report); });
            const double flops =
                cfg.label == "krum" ? static_cast<double>(n) * (n + 1) * static_cast<double>(d) : 0;
            add_row(cfg.label, 1, t, flops);
          }
          continue;
        }
        // Each thread holds its block of every message contiguously, as the shard plan's
        // all-to-all delivers it; only the rule is timed (all threads, start to last finish).
        std::vector<std::vector<float>> blocks(static_cast<std::size_t>(threads));
        for (int r = 0; r < threads; ++r) {
          const auto [lo, hi] = robust::shard_block(d, r, threads);
          blocks[r].resize(static_cast<std::size_t>(n * (hi - lo)));
          for (int i = 0; i < n; ++i)
            std::copy(m.row(i) + lo, m.row(i) + hi, blocks[r].begin() + i * (hi - lo));
        }
        for (const auto& cfg : configs) {
          if (!cfg.make()->shardable()) continue;
          std::vector<std::unique_ptr<robust::Aggregator>> rules;
          for (int r = 0; r < threads; ++r) rules.push_back(cfg.make());
          const double t = best_seconds(o.repeats, [&] {
            robust::ThreadGather gather(threads);
            std::vector<std::thread> pool;
            for (int r = 0; r < threads; ++r)
              pool.emplace_back([&, r] {
                const auto [lo, hi] = robust::shard_block(d, r, threads);
                robust::Messages mb{blocks[r].data(), n, hi - lo, clients, {}};
                robust::Context cb;
                cb.seed = 1;
                cb.shard = robust::Shard{lo, d, gather.for_thread(r)};
                robust::Report report;
                rules[r]->aggregate(mb, cb, out.data() + lo, report);
              });
            for (auto& th : pool) th.join();
          });
          const double flops =
              cfg.label == "krum" ? static_cast<double>(n) * (n + 1) * static_cast<double>(d) : 0;
          add_row(cfg.label, threads, t, flops);
          // The blocks must give what one thread gives on whole vectors, bit for bit (the rule
          // is called as many times, for cclip's state).
          auto whole = cfg.make();
          std::vector<float> want(static_cast<std::size_t>(d));
          robust::Context cw;
          cw.seed = 1;
          for (int rep = 0; rep < o.repeats; ++rep) {
            robust::Report report;
            whole->aggregate(m, cw, want.data(), report);
          }
          if (std::memcmp(want.data(), out.data(), sizeof(float) * static_cast<std::size_t>(d)) != 0)
            throw std::runtime_error(fmt::format(
                "bench aggregate: {} on {} threads differs from one thread (n = {}, d = {})",
                cfg.label, threads, n, d));
        }
      }
    }
  if (!o.json.empty()) {
    std::ofstream js(o.json);
    js << fmt::format(
        R"({{"cores": {}, "read_gbs": {:.3f}, "triad_gbs": {:.3f}, "kernels": "{}", "repeats": {}, "rows": [)",
        cores, bw.read_gbs, bw.triad_gbs, robust::robust_isa(), o.repeats);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      js << fmt::format(
          R"({}{{"aggregator": "{}", "threads": {}, "n": {}, "d": {}, "ms": {:.4f}, "gbs": {:.4f}, "triad_share": {:.4f}, "gflops": {:.3f}}})",
          i == 0 ? "" : ", ", r.rule, r.threads, r.n, r.d, r.ms, r.gbs, r.triad_share, r.gflops);
    }
    js << "]}\n";
  }
  return 0;
}

}  // namespace cohort
