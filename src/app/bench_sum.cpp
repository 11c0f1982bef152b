// `cohort bench sum` and `cohort bench exchange`: the deterministic message sums of
// Note [Deterministic sums] (core/block_sum.h), per ISA path and through MPI.
#include <fmt/format.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>
#include <vector>

#include "app/bench.h"
#include "comm/communicator.h"
#include "core/block_sum.h"
#include "core/build_info.h"
#include "core/errors.h"
#include "core/exact_sum.h"
#include "exchange/message_sum.h"
#include "core/isa.h"
#include "core/rng.h"

namespace cohort {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// n distinct N(0, 0.01^2) messages: gradient-sized values, so the sums take their fast path.
std::vector<std::vector<float>> messages(std::int64_t n, std::int64_t d, std::uint64_t key) {
  std::vector<std::vector<float>> m(static_cast<std::size_t>(n));
  for (std::int64_t c = 0; c < n; ++c) {
    m[c].resize(static_cast<std::size_t>(d));
    Rng rng(key, 0, static_cast<std::uint32_t>(c), Purpose::kTest);
    for (auto& x : m[c]) x = static_cast<float>(0.01 * rng.normal());
  }
  return m;
}

struct SumRow {
  std::string path;
  std::int64_t d = 0;
  double add_ms = 0, add_gbs = 0, read_ms = 0, read_gbs = 0;
};

}  // namespace

int run_sum_bench(const BenchOptions& o) {
  const std::vector<std::int64_t> sizes = parse_sizes(o.sizes);
  const MemoryBandwidth bw = measure_memory_bandwidth(o.megabytes, 3);
  const int n = 8;  // messages added per sum; P is set for 25 terms, as in a 25-client round
  const Isa cpu = cpu_isa();
  fmt::print(
      "# cohort bench sum: cohort {} (git {}), {} cores, CPU paths up to {} (in use: {}), "
      "best of {}\n",
      kVersion, kGitRevision, std::thread::hardware_concurrency(), isa_name(cpu),
      isa_name(active_isa()), o.repeats);
  fmt::print("# memory bandwidth (one thread): read {:.2f} GB/s, triad {:.2f} GB/s\n", bw.read_gbs,
             bw.triad_gbs);
  fmt::print(
      "# add: one weighted float32 message into the sum (GB/s of message; the add moves "
      "20 bytes per value, so memory allows about read/5); read: the sum to float32 "
      "(GB/s of the 8-byte words read)\n");
  fmt::print("{:<22} {:>10} {:>10} {:>9} {:>10} {:>9}\n", "path", "d", "add ms", "GB/s", "read ms",
             "GB/s");
  std::vector<SumRow> rows;
  const auto print = [&](const SumRow& r) {
    fmt::print("{:<22} {:>10} {:>10.3f} {:>9.2f} {:>10.3f} {:>9.2f}\n", r.path, r.d, r.add_ms,
               r.add_gbs, r.read_ms, r.read_gbs);
    std::fflush(stdout);
    rows.push_back(r);
  };
  for (const std::int64_t d : sizes) {
    const auto m = messages(n, d, 1);
    std::vector<float> out(static_cast<std::size_t>(d));
    for (const Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
      if (isa > cpu) continue;
      force_isa(isa_name(isa));
      BlockSum sum(d, 25);
      double add = 1e30, read = 1e30;
      for (int r = 0; r <= o.repeats; ++r) {  // the first sum settles the scales
        sum.clear();
        auto t0 = Clock::now();
        for (const auto& v : m) sum.add(v.data(), 1.0);
        const double ta = since(t0);
        t0 = Clock::now();
        exchange::finish_block_sum(sum, nullptr, out.data(), n);
        const double tr = since(t0);
        if (r > 0) {
          add = std::min(add, ta / n);
          read = std::min(read, tr);
        }
      }
      print(SumRow{fmt::format("exact ({})", isa_name(isa)), d, add * 1e3, 4.0 * d / add / 1e9,
                   read * 1e3, 8.0 * d / read / 1e9});
    }
    force_isa("");
    // comm.sum = float: the float32 adds the reduce plan makes then.
    std::vector<float> f(static_cast<std::size_t>(d));
    double add = 1e30, read = 1e30;
    for (int r = 0; r < o.repeats; ++r) {
      std::fill(f.begin(), f.end(), 0.0f);
      auto t0 = Clock::now();
      for (const auto& v : m)
        for (std::int64_t i = 0; i < d; ++i) f[i] += static_cast<float>(1.0 * v[i]);
      add = std::min(add, since(t0) / n);
      t0 = Clock::now();
      for (std::int64_t i = 0; i < d; ++i)
        out[i] = static_cast<float>(static_cast<double>(f[i]) / n);
      read = std::min(read, since(t0));
    }
    print(SumRow{"float32 (comm.sum float)", d, add * 1e3, 4.0 * d / add / 1e9, read * 1e3,
                 4.0 * d / read / 1e9});
    // The 128-bit exact sums message means used before (one message; they are slow).
    ExactAccumulator e(d);
    auto t0 = Clock::now();
    e.add(m[0].data(), 1.0);
    const double t128 = since(t0);
    t0 = Clock::now();
    e.read(out.data(), n);
    const double r128 = since(t0);
    print(SumRow{"exact 128-bit words", d, t128 * 1e3, 4.0 * d / t128 / 1e9, r128 * 1e3,
                 16.0 * d / r128 / 1e9});
  }
  if (!o.json.empty()) {
    std::ofstream js(o.json);
    js << "{\"read_gbs\": " << bw.read_gbs << ", \"triad_gbs\": " << bw.triad_gbs
       << ", \"cpu_isa\": \"" << isa_name(cpu) << "\", \"rows\": [";
    for (std::size_t i = 0; i < rows.size(); ++i)
      js << (i ? ", " : "")
         << fmt::format(R"({{"path": "{}", "d": {}, "add_ms": {:.4f}, "add_gbs": {:.3f}, )"
                        R"("read_ms": {:.4f}, "read_gbs": {:.3f}}})",
                        rows[i].path, rows[i].d, rows[i].add_ms, rows[i].add_gbs, rows[i].read_ms,
                        rows[i].read_gbs);
    js << "]}\n";
  }
  return 0;
}

int run_exchange_bench(const BenchOptions& o) {
  auto comm = comm::make_mpi_communicator();
  const int P = comm->size(), me = comm->rank();
  const auto d = static_cast<std::int64_t>(std::llround(o.size));
  require_usage(d >= 1, "--size: at least 1 coordinate");
  const auto msg = messages(1, d, 100 + static_cast<std::uint64_t>(me))[0];
  std::vector<float> buf(static_cast<std::size_t>(d)), out(buf.size());
  BlockSum sum(d, std::max(P, 25));
  // The slowest rank's time of each phase, best over the repeats.
  const auto slowest = [&](double t) { return comm->allreduce_scalar(t, comm::ReduceOp::kMax); };
  double raw = 1e30, ex_acc = 1e30, ex_red = 1e30, ex_read = 1e30, fl_acc = 1e30, fl_red = 1e30,
         fl_read = 1e30;
  for (int r = 0; r <= o.repeats; ++r) {  // the first round settles the sums' scales
    // Raw: MPI_Allreduce of the float32 message.
    std::copy(msg.begin(), msg.end(), buf.begin());
    comm->barrier();
    auto t0 = Clock::now();
    comm->allreduce(comm::View{buf.data(), d, comm::DType::kF32}, comm::ReduceOp::kSum);
    const double t_raw = slowest(since(t0));
    // Exact (comm.sum = exact): accumulate, the all-reduces, read.
    comm->barrier();
    t0 = Clock::now();
    sum.clear();
    sum.add(msg.data(), 1.0);
    const double t_acc = slowest(since(t0));
    comm->barrier();
    t0 = Clock::now();
    const auto meta = sum.seal();
    comm->allreduce(
        comm::View{meta.data(), static_cast<std::int64_t>(meta.size()), comm::DType::kI32},
        comm::ReduceOp::kMax);
    const auto levels = sum.pack_spill();
    comm->allreduce(comm::View{sum.words().data(), d, comm::DType::kI64}, comm::ReduceOp::kSum);
    if (!levels.empty())
      comm->allreduce(
          comm::View{levels.data(), static_cast<std::int64_t>(levels.size()), comm::DType::kI64},
          comm::ReduceOp::kSum);
    const double t_red = slowest(since(t0));
    t0 = Clock::now();
    sum.read(out.data(), P);
    const double t_read = slowest(since(t0));
    // Float (comm.sum = float).
    comm->barrier();
    t0 = Clock::now();
    std::fill(buf.begin(), buf.end(), 0.0f);
    for (std::int64_t i = 0; i < d; ++i) buf[i] += static_cast<float>(1.0 * msg[i]);
    const double f_acc = slowest(since(t0));
    comm->barrier();
    t0 = Clock::now();
    comm->allreduce(comm::View{buf.data(), d, comm::DType::kF32}, comm::ReduceOp::kSum);
    const double f_red = slowest(since(t0));
    t0 = Clock::now();
    for (std::int64_t i = 0; i < d; ++i)
      out[i] = static_cast<float>(static_cast<double>(buf[i]) / P);
    const double f_read = slowest(since(t0));
    if (r == 0) continue;
    raw = std::min(raw, t_raw);
    ex_acc = std::min(ex_acc, t_acc);
    ex_red = std::min(ex_red, t_red);
    ex_read = std::min(ex_read, t_read);
    fl_acc = std::min(fl_acc, f_acc);
    fl_red = std::min(fl_red, f_red);
    fl_read = std::min(fl_read, f_read);
  }
  if (me == 0) {
    const double ex = ex_acc + ex_red + ex_read, fl = fl_acc + fl_red + fl_read;
    fmt::print(
        "# cohort bench exchange: cohort {} (git {}), {} ranks, d = {}, ISA {}, best of {} "
        "(slowest rank per phase)\n",
        kVersion, kGitRevision, P, d, isa_name(active_isa()), o.repeats);
    fmt::print("{:<34} {:>10} {:>10} {:>10} {:>10} {:>8}\n", "", "add ms", "reduce ms", "read ms",
               "total ms", "x raw");
    fmt::print("{:<34} {:>10} {:>10.2f} {:>10} {:>10.2f} {:>8.2f}\n",
               "raw MPI_Allreduce float32 (4 B)", "-", raw * 1e3, "-", raw * 1e3, 1.0);
    fmt::print("{:<34} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>8.2f}\n",
               "exact sum (8 B + block scales)", ex_acc * 1e3, ex_red * 1e3, ex_read * 1e3,
               ex * 1e3, ex / raw);
    fmt::print("{:<34} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>8.2f}\n",
               "float sum (comm.sum float, 4 B)", fl_acc * 1e3, fl_red * 1e3, fl_read * 1e3,
               fl * 1e3, fl / raw);
    fmt::print("# goals at d = 1.1e7, 2 ranks: exact <= 2.2x raw, float <= 1.1x raw\n");
    if (!o.json.empty()) {
      std::ofstream js(o.json);
      js << fmt::format(R"({{"ranks": {}, "d": {}, "isa": "{}", "raw_ms": {:.4f}, )"
                        R"("exact_ms": {:.4f}, "exact_add_ms": {:.4f}, "exact_reduce_ms": {:.4f}, )"
                        R"("exact_read_ms": {:.4f}, "float_ms": {:.4f}}})",
                        P, d, isa_name(active_isa()), raw * 1e3, ex * 1e3, ex_acc * 1e3,
                        ex_red * 1e3, ex_read * 1e3, fl * 1e3)
         << "\n";
    }
  }
  return 0;
}

}  // namespace cohort
