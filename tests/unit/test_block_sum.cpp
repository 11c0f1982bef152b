// Block-scaled fixed-point sums (Note [Deterministic sums] in core/block_sum.h): every ISA path
// gives the same bits, the result does not depend on the order or split of the terms, and it is
// at least as accurate as a float64 sum.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "core/block_sum.h"
#include "core/isa.h"
#include "exchange/message_sum.h"

using namespace cohort;

namespace {

// Restores the automatic ISA choice even when an assertion fails.
struct IsaGuard {
  ~IsaGuard() { force_isa(""); }
};

std::vector<const char*> available_isas() {
  std::vector<const char*> out = {"generic"};
  if (cpu_isa() >= Isa::kAvx2) out.push_back("avx2");
  if (cpu_isa() >= Isa::kAvx512) out.push_back("avx512");
  return out;
}

// The exact sum of doubles as a non-overlapping expansion (Shewchuk's grow-expansion, as
// Python's math.fsum keeps it); total() rounds it to double (within one ulp of exact).
struct ExactReference {
  std::vector<double> parts;
  void add(double x) {
    std::size_t k = 0;
    for (double y : parts) {
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0) parts[k++] = lo;
      x = hi;
    }
    parts.resize(k);
    parts.push_back(x);
  }
  double total() const {
    long double s = 0;
    for (double p : parts) s += p;  // increasing magnitude; exact enough for a reference
    return static_cast<double>(s);
  }
};

// Values of many kinds: Gaussian, tiny, large, mixed exponents, denormals, zeros of both signs,
// and values at the edges of the fast path.
std::vector<float> mixed_values(std::int64_t n, std::uint64_t seed, int kind) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-60, 30), pick(0, 7);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) {
    switch (kind == 4 ? pick(g) : kind) {
      case 0:
        x = normal(g) * 1e-3f;
        break;
      case 1:
        x = normal(g) * 1e-30f;
        break;
      case 2:
        x = normal(g) * 1e9f;
        break;
      case 3:
        x = std::ldexp(1.0f + std::fabs(normal(g)), expo(g)) * (normal(g) < 0 ? -1 : 1);
        break;
      case 5:
        x = std::numeric_limits<float>::denorm_min() * static_cast<float>(pick(g) + 1);
        break;
      case 6:
        x = pick(g) % 2 ? 0.0f : -0.0f;
        break;
      default:
        x = normal(g);
        break;
    }
  }
  return v;
}

std::vector<std::uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<std::uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// A sum over `parts` simulated ranks: term t goes to part owner[t], in the order given; the
// parts are combined as the reduce plan combines ranks (max of the block codes, integer sums).
std::vector<float> split_sum(std::vector<BlockSum>& parts,
                             const std::vector<std::vector<float>>& terms,
                             const std::vector<double>& weights, const std::vector<int>& owner,
                             const std::vector<int>& order, double divisor, bool* valid) {
  for (auto& p : parts) p.clear();
  for (int t : order) parts[owner[t]].add(terms[t].data(), weights[t]);
  std::vector<std::int32_t> meta;
  for (auto& p : parts) {
    const auto m = p.seal();
    meta.resize(m.size(), 0);
    for (std::size_t i = 0; i < m.size(); ++i) meta[i] = std::max(meta[i], m[i]);
  }
  std::vector<std::int64_t> words(static_cast<std::size_t>(parts[0].size()), 0), levels;
  std::vector<std::span<std::int64_t>> packed;
  for (auto& p : parts) {
    std::copy(meta.begin(), meta.end(), p.seal().begin());  // as a max all-reduce in place
    packed.push_back(p.pack_spill());
    levels.resize(packed.back().size(), 0);
    REQUIRE(packed.back().size() == levels.size());
    for (std::size_t i = 0; i < levels.size(); ++i) levels[i] += packed.back()[i];
    for (std::size_t i = 0; i < words.size(); ++i) words[i] += p.words()[i];
  }
  *valid = true;
  std::vector<float> out(static_cast<std::size_t>(parts[0].size())), first;
  for (std::size_t r = 0; r < parts.size(); ++r) {
    std::copy(words.begin(), words.end(), parts[r].words().begin());
    std::copy(levels.begin(), levels.end(), packed[r].begin());
    *valid = *valid && parts[r].valid();
    parts[r].read(out.data(), divisor);
    if (r == 0) first = out;
    REQUIRE(bits_of(out) == bits_of(first));  // every rank reads the same
  }
  return out;
}

}  // namespace

TEST_CASE("block sums: every ISA path gives the same bits", "[core][block_sum]") {
  IsaGuard guard;
  for (std::int64_t d : {1, 15, 17, 4096 + 33, 3 * 4096}) {
    for (int kind = 0; kind <= 6; ++kind) {
      // Rounds whose magnitudes jump make lanes leave the window (second words) and come back.
      std::vector<std::vector<float>> rounds[3];
      const std::vector<double> weights = {1.0, 0.3, 600.0, -2.5, 1.0 / 3};
      for (int r = 0; r < 3; ++r)
        for (std::size_t t = 0; t < weights.size(); ++t) {
          auto v = mixed_values(d, 100 * r + 10 * t + kind, kind);
          if (r == 1)
            for (auto& x : v) x *= 4096.0f;  // far above the scales of round 0
          rounds[r].push_back(v);
        }
      std::vector<std::vector<std::uint32_t>> reference;
      std::vector<std::int16_t> reference_scales;
      for (const char* isa : available_isas()) {
        REQUIRE(force_isa(isa));
        BlockSum sum(d, 8);
        std::vector<std::vector<std::uint32_t>> got;
        for (auto& terms : rounds) {
          sum.clear();
          for (std::size_t t = 0; t < terms.size(); ++t) sum.add(terms[t].data(), weights[t]);
          std::vector<float> out(static_cast<std::size_t>(d));
          exchange::finish_block_sum(sum, nullptr, out.data(), 7.0);
          got.push_back(bits_of(out));
        }
        const std::vector<std::int16_t> scales(sum.scales().begin(), sum.scales().end());
        if (reference.empty()) {
          reference = got;
          reference_scales = scales;
        }
        INFO("isa " << isa << ", d " << d << ", kind " << kind);
        REQUIRE(got == reference);
        REQUIRE(scales == reference_scales);
      }
    }
  }
}

TEST_CASE("block sums: every ISA path reads extreme words like the scalar conversion",
          "[core][block_sum]") {
  IsaGuard guard;
  std::vector<std::int64_t> words = {0,
                                     1,
                                     -1,
                                     INT64_MAX,
                                     INT64_MIN,
                                     INT64_MIN + 1,
                                     (std::int64_t{1} << 53) + 1,
                                     -(std::int64_t{1} << 53) - 1,
                                     std::int64_t{1} << 62,
                                     -(std::int64_t{1} << 62),
                                     (std::int64_t{1} << 48) - 1,
                                     -(std::int64_t{1} << 48)};
  std::mt19937_64 g(7);
  for (int i = 0; i < 1000; ++i) words.push_back(static_cast<std::int64_t>(g()) >> (i % 63));
  std::vector<float> want(words.size()), got(words.size());
  for (double scale : {1.0, 0x1.0p-57, 0x1.0p-70}) {
    for (std::size_t i = 0; i < words.size(); ++i)
      want[i] = static_cast<float>(static_cast<double>(words[i]) * scale / 3.0);
    for (const char* isa : available_isas()) {
      REQUIRE(force_isa(isa));
      detail::block_read(words.data(), static_cast<std::int64_t>(words.size()), scale, 3.0,
                         got.data());
      INFO("isa " << isa << ", scale " << scale);
      REQUIRE(bits_of(got) == bits_of(want));
    }
  }
}

TEST_CASE("block sums do not depend on the order of the terms or how ranks split them",
          "[core][block_sum]") {
  const std::int64_t d = 2 * 4096 + 100;
  const int n = 12;
  std::mt19937_64 g(11);
  std::vector<double> weights(n);
  for (int t = 0; t < n; ++t) weights[t] = 1.0 + 0.37 * t;
  // One reference split (one part, terms in order); three rounds whose magnitudes move.
  std::vector<std::vector<std::vector<float>>> rounds(3);
  for (int r = 0; r < 3; ++r)
    for (int t = 0; t < n; ++t) {
      auto v = mixed_values(d, 1000 * r + t, 4);
      if (r == 2)  // above the scales of round 1 (the largest values stay below 2^40)
        for (auto& x : v) x *= 16.0f;
      rounds[r].push_back(v);
    }
  std::vector<int> in_order(n), all_first(n, 0);
  std::iota(in_order.begin(), in_order.end(), 0);
  std::vector<std::vector<float>> reference;
  {
    std::vector<BlockSum> one(1, BlockSum(d, n));
    for (auto& terms : rounds) {
      bool valid = false;
      reference.push_back(split_sum(one, terms, weights, all_first, in_order, 3.0, &valid));
      REQUIRE(valid);
    }
  }
  for (int trial = 0; trial < 12; ++trial) {
    const int parts = 1 + trial % 4;
    std::vector<BlockSum> ranks(static_cast<std::size_t>(parts), BlockSum(d, n));
    for (std::size_t r = 0; r < rounds.size(); ++r) {
      std::vector<int> owner(n), order = in_order;
      for (auto& o : owner) o = static_cast<int>(g() % static_cast<std::uint64_t>(parts));
      std::shuffle(order.begin(), order.end(), g);
      bool valid = false;
      const auto out = split_sum(ranks, rounds[r], weights, owner, order, 3.0, &valid);
      INFO("trial " << trial << " (" << parts << " parts), round " << r);
      REQUIRE(valid);
      REQUIRE(bits_of(out) == bits_of(reference[r]));
    }
  }
}

TEST_CASE("block sums are at least as accurate as a float64 sum on adversarial terms",
          "[core][block_sum]") {
  // Each case is one coordinate, so it carries its block's largest term. Round 0 sets the scale
  // from the terms; round 1 sums the same terms with the scale that followed them.
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<std::vector<float>> cases = {
      {0x1.0p39f, 1.0f, -0x1.0p39f, 1.0f},                        // cancellation
      {0x1.0p39f, 0x1.fffffep-2f, -0x1.0p39f},                    // 2^40 dynamic range
      {1e8f, 1.0f, -1e8f, 3.0e-5f, 0.25f, -2.5e-3f},              // float32 would lose the 1
      {tiny, 3 * tiny, -tiny, 7 * tiny, 0x1.0p-126f},             // denormals
      {-0.0f, -0.0f, 0.0f},                                       // zeros of both signs
      {0.1f, 0.2f, 0.3f, -0.6f, 1e-7f},                           // decimal cancellation
      {0x1.fffffep39f, -0x1.fffffep39f, 0x1.0p-20f, 0x1.0p-20f},  // just below the limit
  };
  for (const auto& c : cases) {
    const int n = static_cast<int>(c.size());
    for (double w : {1.0, 0.1}) {
      BlockSum sum(1, n);
      ExactReference exact;
      double f64 = 0, abs_sum = 0, top = 0;
      for (float x : c) {
        const double v = static_cast<double>(x) * w;
        exact.add(v);
        f64 += v;
        abs_sum += std::fabs(v);
        top = std::max(top, std::fabs(v));
      }
      for (int round = 0; round < 2; ++round) {
        sum.clear();
        for (float x : c) sum.add(&x, w);
        const auto meta = sum.seal();
        (void)meta;
        sum.pack_spill();
        const double got = sum.value(0);
        const int e = sum.scales()[0], p = sum.precision();
        float out = 0;
        sum.read(&out, 1.0);
        REQUIRE(sum.valid());
        const double err = std::fabs(got - exact.total());
        // The Note's bounds: each term off by at most 2^(E-P-1); the read rounds once.
        const double bound = n * std::ldexp(1.0, e - p - 1) + std::ldexp(std::fabs(got), -53);
        // What a float64 sum in any order may be off by.
        const double f64_bound = (n - 1) * std::ldexp(abs_sum, -53);
        INFO("case of " << n << " terms, weight " << w << ", round " << round << ": got " << got
                        << ", exact " << exact.total() << ", float64 " << f64 << ", scale " << e);
        REQUIRE(err <= bound);
        if (round == 1) REQUIRE(err <= std::max(f64_bound, std::ldexp(std::fabs(got), -53)));
        if (round == 1 && top > 0)  // the scale followed the largest term
          REQUIRE(std::ldexp(1.0, e) <= std::ldexp(top, BlockSum::kGrowth + 1));
      }
    }
  }
}

TEST_CASE("block sums: Gaussian sums are closer to exact than float64 sums", "[core][block_sum]") {
  const std::int64_t d = 20000;
  const int n = 25;
  // Weights 1/(t+3) make every term a full 53-bit double, so float64 sums round.
  std::vector<std::vector<float>> terms;
  for (int t = 0; t < n; ++t) terms.push_back(mixed_values(d, 500 + t, 0));
  const auto weight = [](int t) { return 1.0 / (t + 3); };
  BlockSum sum(d, n);
  for (int round = 0; round < 2; ++round) {
    sum.clear();
    for (int t = 0; t < n; ++t) sum.add(terms[t].data(), weight(t));
    sum.seal();
    sum.pack_spill();
    if (round == 0) {
      std::vector<float> out(static_cast<std::size_t>(d));
      sum.read(out.data(), 1.0);
    }
  }
  double ours = 0, f64 = 0;
  for (std::int64_t i = 0; i < d; ++i) {
    ExactReference exact;
    double naive = 0;
    for (int t = 0; t < n; ++t) {
      const double v = static_cast<double>(terms[t][i]) * weight(t);
      exact.add(v);
      naive += v;
    }
    ours += std::fabs(sum.value(i) - exact.total());
    f64 += std::fabs(naive - exact.total());
  }
  INFO("mean abs error: block sum " << ours / d << ", float64 " << f64 / d);
  REQUIRE(f64 > 0);
  REQUIRE(ours <= f64);
}

TEST_CASE("block sums: NaN, infinities and terms of 2^40 or more make the sum invalid",
          "[core][block_sum]") {
  const float inf = std::numeric_limits<float>::infinity();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), inf, -inf, 0x1.0p40f, -0x1.0p40f}) {
    for (std::int64_t at : {0, 5, 20}) {  // a vector lane and a tail lane
      std::vector<float> v(21, 0.5f);
      v[static_cast<std::size_t>(at)] = bad;
      BlockSum sum(21, 2);
      sum.add(v.data(), 1.0);
      INFO("bad value " << bad << " at " << at);
      REQUIRE_FALSE(sum.valid());
    }
  }
  // The weight counts: 2^39 times 2 is 2^40.
  std::vector<float> v(21, 0x1.0p39f);
  BlockSum twice(21, 1);
  twice.add(v.data(), 2.0);
  REQUIRE_FALSE(twice.valid());
  BlockSum once(21, 2);
  once.add(v.data(), 1.0);
  once.add(v.data(), 1.0);
  REQUIRE(once.valid());
  std::vector<float> out(21);
  exchange::finish_block_sum(once, nullptr, out.data(), 1.0);
  REQUIRE(out[0] == 0x1.0p40f);
}

TEST_CASE("block sums: a term far above its block's scale is exact through the higher levels",
          "[core][block_sum]") {
  const std::int64_t d = 4096 + 7;
  BlockSum sum(d, 4);
  std::vector<float> small(static_cast<std::size_t>(d), 0x1.0p-20f),
      out(static_cast<std::size_t>(d));
  sum.add(small.data(), 1.0);
  exchange::finish_block_sum(sum, nullptr, out.data(), 1.0);
  REQUIRE(sum.scales()[0] == -19 + BlockSum::kGrowth);
  // Round 2: one huge term on coordinate 4100 (block 1) and coordinate 3 (block 0).
  std::vector<float> big = small;
  big[3] = 0x1.fffffep38f;
  big[4100] = -0x1.0p30f;
  sum.clear();
  sum.add(small.data(), 1.0);
  sum.add(big.data(), 1.0);
  sum.add(small.data(), -3.0);
  const auto meta = sum.seal();
  REQUIRE(meta[1] == 1);  // block 0 needs one level above its words (P = 59: 2^115 in 2 digits)
  REQUIRE(meta[3] == 1);  // block 1 too
  REQUIRE(sum.pack_spill().size() == static_cast<std::size_t>(d));
  // 2^-20 + big - 3 2^-20, rounded once to double.
  REQUIRE(sum.value(3) == static_cast<double>(0x1.fffffep38L - 0x1.0p-19L));
  REQUIRE(sum.value(4100) == -0x1.0p30 - 0x1.0p-19);
  REQUIRE(sum.value(0) == -0x1.0p-20);
  sum.read(out.data(), 1.0);
  REQUIRE(out[4100] == static_cast<float>(-0x1.0p30 - 0x1.0p-19));
  REQUIRE(sum.valid());
}

TEST_CASE("block sums refuse more terms than they were sized for", "[core][block_sum]") {
  BlockSum sum(3, 2);
  const float v[3] = {1, 2, 3};
  sum.add(v, 1.0);
  sum.add(v, 1.0);
  REQUIRE_THROWS_AS(sum.add(v, 1.0), std::logic_error);
  // P leaves room for the terms: 2^(h-1) <= n < 2^h, P = 62 - h.
  REQUIRE(BlockSum(1, 1).precision() == 61);
  REQUIRE(BlockSum(1, 25).precision() == 57);
  REQUIRE(BlockSum(1, 10000).precision() == 48);
}
