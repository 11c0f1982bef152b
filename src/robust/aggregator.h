// Aggregators: n client messages -> one vector (docs/algorithms.md §3).
//
// Every robust aggregator treats a message containing NaN or +-Inf as invalid: the caller
// (robust::aggregate) drops it, counts it, and it never reaches the rule. `mean` is not robust
// and is not called through here (the exchange's exact sums propagate non-finite values and the
// run stops as diverged).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/registration.h"
#include "core/rng.h"
#include "robust/chunk_tree.h"

namespace cohort::robust {

// The round's messages: n rows of d floats, row-major, in client order.
struct Messages {
  const float* data = nullptr;
  int n = 0;
  std::int64_t d = 0;
  std::span<const int> clients;     // client id of each row (for reports)
  std::span<const double> weights;  // sample weights (gm), or empty = uniform
  const float* row(int i) const { return data + static_cast<std::int64_t>(i) * d; }
  // Client id of row i (the row index when no ids were given).
  int client(int i) const { return clients.empty() ? i : clients[static_cast<std::size_t>(i)]; }
};

// What a rule chose, for the per-round metrics and `cohort aggregate`.
struct Report {
  std::vector<int> selected;   // client ids the rule kept (krum, multikrum, bulyan, zeno)
  std::vector<double> scores;  // per input row, in input order (krum scores, zeno scores)
  int dropped_nonfinite = 0;   // rows dropped before the rule because they were not finite
};

// Under the shard plan a rule sees every message's values on one block of coordinates
// (Messages::d is the block's width); sums over all coordinates go through the chunk tree
// (Note [Chunked sums]), and the rule writes its output on the block.
struct Shard {
  std::int64_t offset = 0;   // first coordinate of the block: a multiple of kSumChunk
  std::int64_t d_total = 0;  // length of the whole messages; 0: the block is the whole message
  GatherBytes gather;        // all-gather over the ranks holding the other blocks; empty: none
  bool sharded() const { return static_cast<bool>(gather); }
};

// Everything a rule may need besides the messages.
struct Context {
  std::uint64_t seed = 0;
  std::uint32_t round = 0;
  // zeno: L(y) on the server's validation minibatch of this round; x the current model.
  std::function<double(const float* y)> validation_loss;
  const float* x = nullptr;
  Shard shard;
};

class Aggregator {
 public:
  virtual ~Aggregator() = default;
  virtual std::string name() const = 0;
  // out (d floats) <- rule(messages). `m` holds only finite rows.
  virtual void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) = 0;
  // Throws UsageError when the rule cannot run on n inputs (e.g. krum needs n >= 2f + 3),
  // saying what would work.
  virtual void check_inputs(int n) const = 0;
  // Whether the rule can run on blocks of coordinates (the shard plan).
  virtual bool shardable() const { return true; }
  // State a rule carries from one round to the next (cclip's v; Note [Checkpoints]); empty for
  // the stateless rules. Under the shard plan it covers the rank's block of coordinates.
  virtual std::vector<float> saved_state() const { return {}; }
  virtual void restore_state(std::vector<float>) {}
};

struct AggregatorOptions {
  std::string name = "cm";    // cm | tm | krum | multikrum | gm | cclip | bulyan | zeno
  int f = 1;                  // krum, multikrum, bulyan: assumed Byzantine count
  int m = 0;                  // multikrum: vectors averaged; 0 = n - f
  int b = 1;                  // tm: trimmed per side; zeno: dropped
  int iters = 3;              // gm: T; cclip: L
  double nu = 0.1;            // gm
  std::string init = "zero";  // gm: zero | mean
  double tau = 10.0;          // cclip
  double rho = 5e-4;          // zeno
  double gamma = 0.1;         // zeno
  int batch = 32;             // zeno: validation minibatch size (used by the caller)
  int bucket = 0;             // bucketing s; 0 or 1 = no bucketing
};

using AggregatorRegistration =
    Registration<std::unique_ptr<Aggregator>(const AggregatorOptions&), Field<AggregatorOptions>>;

// The aggregator slot (one explicit list, Note [Registration]): mean and majority, the sums the
// exchange computes itself (no factory here), then the robust rules, each declared in its own
// file.
const std::vector<AggregatorRegistration>& aggregators();
// The schema of the aggregator slot, with bucketing, which wraps any robust rule.
Section aggregator_section();
// The aggregator.* options of a resolved config.
AggregatorOptions aggregator_options(const Config& cfg);
// The robust rule named o.name, wrapped in bucketing when bucket > 1. Throws UsageError for
// impossible options, naming the key.
std::unique_ptr<Aggregator> make_aggregator(const AggregatorOptions& o);
// For the factories' checks: UsageError "aggregator.<key>: <what>" unless ok.
void require_option(bool ok, const char* key, const std::string& what);

// Drops non-finite rows (counted in report.dropped_nonfinite), then applies the rule.
// Returns false when no finite row is left (out untouched). dropped_earlier >= 0: the caller has
// already dropped that many non-finite messages and every row of m is finite (the shard plan's
// owners check their own), so the scan is skipped.
bool aggregate(Aggregator& rule, const Messages& m, const Context& ctx, float* out, Report& report,
               int dropped_earlier = -1);

// What aggregator.name selects: one of the sums the exchange computes itself (mean, majority,
// qffl: a mean with weights the round computes from the clients' losses, Note [q-FFL] in
// algo/round.cpp)
// or a robust rule of make_aggregator. Code compares kinds; the names stay at the config boundary
// and in printed text.
enum class AggregatorKind { kMean, kMajority, kQffl, kCm, kTm, kKrum, kMultikrum, kGm, kCclip, kBulyan, kZeno };
// aggregator.name -> its kind; throws UsageError listing the known names for any other name.
AggregatorKind aggregator_kind(const std::string& name);
// The kind's aggregator.name.
const char* aggregator_name(AggregatorKind kind);
// Whether the kind is a robust rule (make_aggregator builds it), not one of the sums.
bool is_robust(AggregatorKind kind);

// ---- Shared row kernels (robust/aggregator.cpp) -------------------------------------------------
//
// Note [Robust kernels]
// The hot loops of the rules (Gram products, per-coordinate sorting networks, weighted row sums,
// the finiteness scan) are written once as plain lane loops and compiled for AVX-512, AVX2+FMA
// and the baseline target, picked at run time by robust_isa(). Every multiply-add is an explicit
// std::fma and every lane reduction has a fixed order, so all three paths give the same bits, and
// no path depends on the address of the caller's buffers (blocks are copied to aligned scratch
// first; Note [Address-independent results] in model/dense.h). No rule uses threads or Eigen.

// "avx512", "avx2" or "generic": the path the kernels take (Note [One ISA decision],
// core/isa.h).
const char* robust_isa();
// Forces a path for tests ("avx512", "avx2", "generic", or "" = automatic); false when this CPU
// lacks it. The same switch as cohort::force_isa: every kernel family follows it.
bool force_robust_isa(const std::string& isa);

// out[k] = (sum_i coef[i] * rows[i][k]) / divisor, accumulated in double in row order
// (coef == nullptr: all ones).
void combine_rows(std::span<const float* const> rows, const double* coef, double divisor,
                  std::int64_t d, float* out);

// True when every one of the d values is finite.
bool all_finite(const float* v, std::int64_t d);

namespace detail {
// 2: AVX-512, 1: AVX2+FMA, 0: generic (the path robust_isa() names).
int isa_level();
// Kernels that read many rows side by side, a few lines of each at a time, outrun the hardware
// prefetchers (they follow a limited number of streams and stop at page ends): they prefetch
// `lines` cache lines of a row, kRowAhead values past x. Prefetches never change results.
inline constexpr std::int64_t kRowAhead = 512;
inline void prefetch_row_ahead(const float* x, int lines) {
  for (int l = 0; l < lines; ++l) __builtin_prefetch(x + kRowAhead + 16 * l, 0, 3);
}
// Float scratch aligned to 64 bytes; contents unspecified after reserve().
class Scratch {
 public:
  float* reserve(std::int64_t n);
  float* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> data_;
  std::int64_t capacity_ = 0;
};
}  // namespace detail

}  // namespace cohort::robust
