// Counter-based random streams keyed by (seed, round, client, purpose).
//
// Note [Keyed randomness]
// Every random number cohort draws comes from Philox4x32-10 (Salmon et al., SC'11). The 64-bit
// run seed is the key; the counter is (index, round, client, purpose). A stream is therefore a
// pure function of those four values: which rank simulates a client, how many ranks there are,
// and in which order clients are processed never change what a client draws. Global streams
// (client sampling, model init, data generation) use client = kGlobalClient.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cohort {

enum class Purpose : std::uint32_t {
  kClientSampling = 1,
  kModelInit = 2,
  kBatches = 3,
  kPartition = 4,
  kDataGeneration = 5,
  kDataSplit = 6,
  kCompression = 7,
  kAttack = 8,
  kAggregation = 9,
  kDownlink = 10,
  kControlBatches = 11,  // scaffold option I: the minibatch of the control gradient at x
  kControlNoise = 12,    // and its data noise
  kClientTest = 13,      // which of a client's samples form its local test set
  kPersonalBatches = 14, // personal models' local steps (local, ditto, finetune)
  kPersonalNoise = 15,   // and their data noise
  kTopology = 16,        // random graphs (erdos_renyi, random_matching)
  kNodeInit = 17,        // decentralized nodes' initial spread (init_spread)
  kPrivacyNoise = 18,    // DP noise (the server's, or each client's share)
  kSecaggKeys = 19,      // secure aggregation: a client's X25519 key-pair seeds
  kSecaggMasks = 20,     // its self-mask seed b_i
  kSecaggDropout = 21,   // whether it drops out before its masked vector arrives
  kSecaggShares = 22,    // the random coefficients of its Shamir polynomials
  kDpSgdBatches = 23,    // dp_sgd: each local step's Poisson sample of the client's examples
  kDpSgdNoise = 24,      // dp_sgd: each local step's Gaussian noise
  kTest = 100,
};

inline constexpr std::uint32_t kGlobalClient = 0xFFFFFFFFu;

class Rng {
 public:
  Rng(std::uint64_t seed, std::uint32_t round, std::uint32_t client, Purpose purpose)
      : key0_(static_cast<std::uint32_t>(seed)),
        key1_(static_cast<std::uint32_t>(seed >> 32)),
        round_(round),
        client_(client),
        purpose_(static_cast<std::uint32_t>(purpose)) {}

  std::uint32_t next_u32() {
    if (pos_ == 4) refill();
    return out_[pos_++];
  }
  std::uint64_t next_u64() {
    std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe for log().
  double uniform_open0() { return 1.0 - uniform(); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller; the second value is cached.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform_open0()));
    const double t = 2.0 * 3.14159265358979323846 * uniform();
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  // Uniform integer in [0, n), unbiased (rejection); n > 0.
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = n * (UINT64_MAX / n);  // multiple of n
    std::uint64_t v;
    do v = next_u64();
    while (v >= limit);
    return v % n;
  }
  // Fisher-Yates shuffle.
  template <class T>
  void shuffle(std::span<T> v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }
  // k distinct integers of [0, n) by a partial Fisher-Yates shuffle, returned sorted (k <= n).
  // k distinct values of [0, n), sorted: the first k steps of a Fisher-Yates shuffle of
  // 0..n-1, in O(k) time and memory (Note [Population scale] in algo/runner.cpp): only the
  // entries a step displaced are stored, so a population of 10^7 costs nothing per round
  // beyond the k draws. Same draws and same result as shuffling a dense array.
  std::vector<int> choose_sorted(int n, int k) {
    std::unordered_map<int, int> displaced;  // position -> value, where it is not the identity
    displaced.reserve(static_cast<std::size_t>(k));
    const auto value_at = [&](int i) {
      const auto it = displaced.find(i);
      return it == displaced.end() ? i : it->second;
    };
    std::vector<int> ids(static_cast<std::size_t>(k));
    for (int i = 0; i < k; ++i) {
      const int j = i + static_cast<int>(below(static_cast<std::uint64_t>(n - i)));
      const int vi = value_at(i);
      ids[static_cast<std::size_t>(i)] = value_at(j);
      displaced[j] = vi;  // position i is never read again (later steps draw j >= i + 1)
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  // Gamma(shape, 1) by Marsaglia-Tsang (shape > 0).
  double gamma(double shape) {
    if (shape < 1.0) {
      const double u = uniform_open0();
      return gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform_open0();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

 private:
  void refill() {
    out_[0] = index_++;
    out_[1] = round_;
    out_[2] = client_;
    out_[3] = purpose_;
    philox4x32_10(out_, key0_, key1_);
    pos_ = 0;
  }

 public:
  // The Philox4x32-10 block function: ctr (4 words) is replaced by its output.
  static void philox4x32_10(std::uint32_t* ctr, std::uint32_t k0, std::uint32_t k1) {
    std::uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; ++r) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * c0;
      const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * c2;
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c1 = static_cast<std::uint32_t>(p1);
      c3 = static_cast<std::uint32_t>(p0);
      c0 = n0;
      c2 = n2;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    ctr[0] = c0;
    ctr[1] = c1;
    ctr[2] = c2;
    ctr[3] = c3;
  }

 private:
  std::uint32_t key0_, key1_, round_, client_, purpose_;
  std::uint32_t index_ = 0;
  std::uint32_t out_[4] = {0, 0, 0, 0};
  int pos_ = 4;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace cohort
