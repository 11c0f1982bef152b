// Compressors (docs/algorithms.md §2): exact wire sizes, exact decodes against independent scalar
// references, statistical checks of the random ones with tolerances derived from N.
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <vector>

#include "compress/bitstream.h"
#include "compress/compressor.h"
#include "compress/philox_bulk.h"
#include "compress/qsgd.h"
#include "compress/randk.h"
#include "compress/topk.h"
#include "core/errors.h"
#include "core/isa.h"

using namespace cohort;
using namespace cohort::compress;

namespace {

std::unique_ptr<Compressor> make(CompressorOptions o) { return make_compressor(o); }

CompressorOptions opts(const std::string& name) {
  CompressorOptions o;
  o.name = name;
  return o;
}

std::vector<LayerShape> one_layer(std::int64_t n) { return {LayerShape{0, n, 1}}; }

std::vector<float> gaussian(std::size_t n, std::uint64_t seed) {
  Rng rng(seed, 0, 0, Purpose::kTest);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

std::vector<float> roundtrip(const Compressor& c, const std::vector<float>& v,
                             const std::vector<LayerShape>& layers, const MessageContext& ctx,
                             Encoded* enc_out = nullptr) {
  const Encoded e = encode(c, v, layers, ctx, {});
  REQUIRE(e.bytes.size() == (e.bits + 7) / 8);
  std::vector<float> out(v.size(), 12345.0f);
  decode(c, e, layers, ctx, out);
  if (enc_out != nullptr) *enc_out = e;
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

// ---- independent scalar references -----------------------------------------------------------

std::vector<std::uint32_t> reference_topk(const std::vector<float>& v, std::size_t k) {
  std::vector<std::uint32_t> order(v.size());
  std::iota(order.begin(), order.end(), 0u);
  auto key = [&](std::uint32_t i) { return std::bit_cast<std::uint32_t>(v[i]) & 0x7FFFFFFFu; };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return key(a) > key(b); });
  order.resize(std::min(k, v.size()));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<std::uint32_t> reference_randk(std::uint64_t seed, std::uint32_t n, std::uint32_t k) {
  const bool complement = 2ull * k > n;
  const std::uint32_t m = complement ? n - k : k;
  Rng rng(seed, 0, 0, Purpose::kCompression);
  std::set<std::uint32_t> drawn;
  const std::uint64_t limit = (std::uint64_t{1} << 32) % n;
  while (drawn.size() < m) {
    std::uint64_t p;
    do p = std::uint64_t{rng.next_u32()} * n;
    while ((p & 0xFFFFFFFFu) < limit);
    drawn.insert(static_cast<std::uint32_t>(p >> 32));
  }
  std::vector<std::uint32_t> out;
  for (std::uint32_t j = 0; j < n; ++j)
    if (drawn.count(j) != (complement ? 1u : 0u)) out.push_back(j);
  return out;
}

// Note [QSGD rounding] and the wire layout of qsgd.h, one value at a time with the plain Rng.
struct QsgdReference {
  std::vector<float> decoded;
  std::uint64_t fixed_bits = 0, elias_bits = 0;
};

float reference_l2(const float* v, std::size_t n) {
  double total = 0;
  for (std::size_t start = 0; start < n; start += 1024) {
    float lanes[16] = {};
    for (std::size_t i = start; i < std::min(n, start + 1024); ++i)
      lanes[(i - start) % 16] += v[i] * v[i];
    for (float x : lanes) total += x;
  }
  return static_cast<float>(std::sqrt(total));
}

QsgdReference reference_qsgd(const std::vector<float>& v, const std::vector<LayerShape>& layers,
                             const MessageContext& ctx, int s, bool max_norm, std::int64_t bucket) {
  QsgdReference ref;
  ref.decoded.resize(v.size());
  Rng priv = ctx.private_rng();
  const int w = 1 + index_bits(static_cast<std::uint64_t>(s) + 1);
  const float s_f = static_cast<float>(s);
  std::size_t at = 0;
  for (const auto& layer : layers) {
    const std::uint64_t key = priv.next_u64();
    const auto n = static_cast<std::size_t>(layer.size());
    Rng bytes(key, 0, 0, Purpose::kCompression), ties(key, 1, 0, Purpose::kCompression);
    std::uint32_t word = 0;
    const std::size_t b = bucket > 0 ? static_cast<std::size_t>(bucket) : n;
    for (std::size_t b0 = 0; b0 < n; b0 += b) {
      const std::size_t m = std::min(b, n - b0);
      const float* x = v.data() + at + b0;
      float nu = 0;
      if (max_norm) {
        for (std::size_t i = 0; i < m; ++i) nu = std::max(nu, std::fabs(x[i]));
      } else {
        nu = reference_l2(x, m);
        double exact = 0;
        for (std::size_t i = 0; i < m; ++i) exact += double{x[i]} * x[i];
        REQUIRE(std::fabs(nu - std::sqrt(exact)) <= 1e-5 * std::sqrt(exact));
      }
      ref.fixed_bits += 32 + m * static_cast<std::uint64_t>(w);
      ref.elias_bits += 32;
      const float r256 = nu > 0 ? static_cast<float>(256 * s) / nu : 0.0f;
      const float q = nu / s_f;
      for (std::size_t i = 0; i < m; ++i) {
        const std::size_t j = b0 + i;
        if (j % 4 == 0) word = bytes.next_u32();
        const int r = static_cast<int>((word >> (8 * (j % 4))) & 255);
        float z = std::fabs(x[i]) * r256;
        if (!(z < 256.0f * s_f)) z = 256.0f * s_f;
        const double big = std::floor(z);
        const int l = static_cast<int>(big) / 256, t = static_cast<int>(big) % 256;
        int level = l;
        if (r < t) level = l + 1;
        if (r == t) {
          const double f = z - big;
          if (static_cast<double>(ties.next_u32()) < f * 4294967296.0) level = l + 1;
        }
        const bool neg = std::signbit(x[i]) && level > 0;
        const float mag = static_cast<float>(level) * q;
        ref.decoded[at + j] = neg ? -mag : mag;
        if (level == 0) {
          ref.elias_bits += 1;
        } else {
          const int nb = std::bit_width(static_cast<unsigned>(level + 1)) - 1;
          ref.elias_bits += 2 * nb + 2;
        }
      }
    }
    at += n;
  }
  return ref;
}

const std::vector<std::size_t> kSizes = {1, 7, 1000003};

}  // namespace

// ---- bit streams
// ---------------------------------------------------------------------------------

TEST_CASE("compress: bit streams round-trip fields of mixed widths", "[compress]") {
  Rng rng(3, 0, 0, Purpose::kTest);
  std::vector<std::pair<std::uint64_t, int>> fields;
  BitWriter w;
  std::uint64_t total = 0;
  for (int i = 0; i < 20000; ++i) {
    const int nbits = static_cast<int>(rng.below(65));
    std::uint64_t value = rng.next_u64();
    if (nbits < 64) value &= (std::uint64_t{1} << nbits) - 1;
    fields.emplace_back(value, nbits);
    w.put(value, nbits);
    total += static_cast<std::uint64_t>(nbits);
  }
  // runs of whole words at whatever alignment the stream has reached, and a ragged tail
  std::vector<std::uint64_t> run(37);
  for (auto& x : run) x = rng.next_u64();
  w.put_bits(run.data(), 37 * 64 - 5);
  w.put(0x5, 3);
  total += 37 * 64 - 5 + 3;
  REQUIRE(w.bits() == total);
  const auto bytes = w.finish();
  REQUIRE(bytes.size() == (total + 7) / 8);

  BitReader r(bytes.data(), total);
  for (const auto& [value, nbits] : fields) {
    const std::uint64_t mask = nbits == 64 ? ~0ull : (1ull << nbits) - 1;
    REQUIRE((r.peek64() & mask) == value);
    REQUIRE(r.get(nbits) == value);
  }
  std::vector<std::uint64_t> back(37, 0);
  r.get_bits(back.data(), 37 * 64 - 5);
  for (int i = 0; i < 36; ++i) REQUIRE(back[i] == run[i]);
  REQUIRE(back[36] == (run[36] & ((1ull << 59) - 1)));
  REQUIRE(r.get(3) == 0x5);
  REQUIRE(r.position() == total);
  REQUIRE_THROWS(r.get(1));
}

TEST_CASE("compress: bit streams keep LSB-first byte order", "[compress]") {
  BitWriter w;
  w.put(0x1, 1);
  w.put(0x3, 2);   // bits 1..2
  w.put(0xAB, 8);  // bits 3..10
  const auto bytes = w.finish();
  REQUIRE(bytes.size() == 2);
  REQUIRE(bytes[0] == static_cast<std::uint8_t>(0x1 | 0x3 << 1 | (0xAB & 0x1F) << 3));
  REQUIRE(bytes[1] == (0xAB >> 5));
  // put_bits after every lead (word-, byte- and bit-aligned; a lead of ones shows whether the
  // pending bits survive) gives the same stream as put(64) word by word, also when a run of
  // words follows a previous run
  std::vector<std::uint64_t> data = {0x0123456789ABCDEFull, 0xFEDCBA9876543210ull, 0x77ull};
  for (int lead = 0; lead < 64; ++lead) {
    for (int runs = 1; runs <= 2; ++runs) {
      BitWriter a, b;
      a.put(~0ull, lead);
      b.put(~0ull, lead);
      for (int k = 0; k < runs; ++k) {
        a.put_bits(data.data(), 64 * 2 + 7);
        b.put(data[0], 64);
        b.put(data[1], 64);
        b.put(data[2], 7);
      }
      INFO("lead " << lead << ", runs " << runs);
      REQUIRE(a.bits() == b.bits());
      REQUIRE(a.finish() == b.finish());
    }
  }
}

TEST_CASE("compress: bulk Philox equals Rng on every instruction set", "[compress]") {
  for (const char* isa : {"sse2", "avx2", "avx512"}) {
    for (std::uint32_t first : {0u, 3u, 1000u}) {
      for (std::size_t nb :
           {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{37}, std::size_t{1000}}) {
        std::vector<std::uint32_t> out(4 * nb + 1, 0xDEADBEEF);
        if (!philox_blocks_using(isa, 0x1234567890ABCDEFull, 17, 5, Purpose::kCompression, first,
                                 nb, out.data())) {
          WARN("this CPU lacks " << isa << ": not checked");
          continue;
        }
        Rng rng(0x1234567890ABCDEFull, 17, 5, Purpose::kCompression);
        for (std::uint32_t i = 0; i < 4 * first; ++i) rng.next_u32();
        for (std::size_t i = 0; i < 4 * nb; ++i) REQUIRE(out[i] == rng.next_u32());
        REQUIRE(out[4 * nb] == 0xDEADBEEF);
      }
    }
  }
  BulkRng bulk(9, 1, 2, Purpose::kCompression);
  Rng rng(9, 1, 2, Purpose::kCompression);
  for (int i = 0; i < 5000; ++i) REQUIRE(bulk.next_u32() == rng.next_u32());
}

// ---- none, sign
// ----------------------------------------------------------------------------------

TEST_CASE("compress: none is float32 verbatim at 32 bits per value", "[compress]") {
  const auto c = make(opts("none"));
  for (std::size_t n : kSizes) {
    const auto v = gaussian(n, n);
    Encoded e;
    const auto out = roundtrip(*c, v, one_layer(static_cast<std::int64_t>(n)), {1, 2, 3}, &e);
    REQUIRE(e.bits == 32 * n);
    REQUIRE(same_bits(out, v));
  }
}

TEST_CASE("compress: sign and scaled sign on a hand-computed vector", "[compress]") {
  // |v|_1 = 0.5 + 1.5 + 0 + 2 + 0 + 3 + 1 = 8, d = 7; sign(0) = sign(-0) = +1.
  const std::vector<float> v = {0.5f, -1.5f, 0.0f, 2.0f, -0.0f, -3.0f, 1.0f};
  const std::vector<float> pattern = {1, -1, 1, 1, 1, -1, 1};
  auto o = opts("sign");
  Encoded e;
  auto out = roundtrip(*make(o), v, one_layer(7), {}, &e);
  REQUIRE(e.bits == 7);
  REQUIRE(e.bytes.size() == 1);
  REQUIRE(e.bytes[0] == 0b0100010);  // bits 1 and 5
  REQUIRE(out == pattern);
  o.scale = "l1";
  out = roundtrip(*make(o), v, one_layer(7), {}, &e);
  REQUIRE(e.bits == 7 + 32);
  const float scale = static_cast<float>(8.0 / 7.0);
  for (std::size_t i = 0; i < 7; ++i) REQUIRE(out[i] == pattern[i] * scale);
}

TEST_CASE("compress: sign round-trips at d = 1, 7, 1000003", "[compress]") {
  for (std::string scale : {"none", "l1"}) {
    auto o = opts("sign");
    o.scale = scale;
    const auto c = make(o);
    for (std::size_t n : kSizes) {
      auto v = gaussian(n, 10 + n);
      for (std::size_t i = 0; i < n; i += 5) v[i] = i % 2 ? -0.0f : 0.0f;  // sign(0) = +1
      Encoded e;
      const auto out = roundtrip(*c, v, one_layer(static_cast<std::int64_t>(n)), {}, &e);
      REQUIRE(e.bits == n + (scale == "l1" ? 32 : 0));
      double l1 = 0;
      for (float x : v) l1 += std::fabs(x);
      const float s = scale == "l1" ? out[0] * (v[0] < 0 ? -1.0f : 1.0f) : 1.0f;
      if (scale == "l1") REQUIRE(std::fabs(s - l1 / n) <= 1e-5 * (l1 / n));
      for (std::size_t i = 0; i < n; ++i) REQUIRE(out[i] == (v[i] < 0 ? -s : s));
    }
  }
}

// ---- top-k -----------------------------------------------------------------------------------

TEST_CASE("compress: top-k keeps the k largest magnitudes, ties to the lower index", "[compress]") {
  const std::vector<float> v = {1, -3, 3, 2, -3, 0};
  auto o = opts("topk");
  o.k = 2;
  Encoded e;
  auto out = roundtrip(*make(o), v, one_layer(6), {}, &e);
  REQUIRE(out == std::vector<float>{0, -3, 3, 0, 0, 0});
  REQUIRE(e.bits == 2 * (32 + 3));
  o.k = 3;
  out = roundtrip(*make(o), v, one_layer(6), {}, &e);
  REQUIRE(out == std::vector<float>{0, -3, 3, 0, -3, 0});
  REQUIRE(e.bits == 3 * (32 + 3));
  o.k = 4;
  o.plain_indices = true;
  out = roundtrip(*make(o), v, one_layer(6), {}, &e);
  REQUIRE(out == std::vector<float>{0, -3, 3, 2, -3, 0});
  REQUIRE(e.bits == 4 * (32 + 32));
  o.k = 0;
  o.plain_indices = false;
  o.ratio = 0.5;  // k = round(3) = 3
  out = roundtrip(*make(o), v, one_layer(6), {}, &e);
  REQUIRE(out == std::vector<float>{0, -3, 3, 0, -3, 0});
}

TEST_CASE("compress: top-k round-trips at d = 1, 7, 1000003 against a sort", "[compress]") {
  for (std::size_t n : kSizes) {
    for (int ties : {0, 1}) {
      auto v = gaussian(n, 20 + n);
      // with ties: magnitudes from a handful of values, so the k-th is shared by many entries
      if (ties)
        for (auto& x : v) x = std::round(x * 2.0f) / 2.0f;
      for (double ratio : {0.01, 0.3}) {
        auto o = opts("topk");
        o.ratio = ratio;
        const std::int64_t k = sparse_k(ratio, 0, static_cast<std::int64_t>(n));
        Encoded e;
        const auto out = roundtrip(*make(o), v, one_layer(static_cast<std::int64_t>(n)), {}, &e);
        REQUIRE(e.bits == static_cast<std::uint64_t>(k) * (32 + index_bits(n)));
        const auto keep = reference_topk(v, static_cast<std::size_t>(k));
        std::vector<float> expect(n, 0.0f);
        for (auto j : keep) expect[j] = v[j];
        REQUIRE(same_bits(out, expect));
      }
    }
  }
}

// The candidate scans (AVX-512, AVX2, SSE2) read whole 64-value steps in eight streams and the
// rest one value at a time: sizes around those boundaries, every path against a sort.
TEST_CASE("compress: top-k gives the same indices and values on every ISA path", "[compress]") {
  const std::string isa = GENERATE(as<std::string>{}, "avx512", "avx2", "generic");
  if (!force_isa(isa)) {
    WARN("this CPU lacks " << isa << ": not checked");
    return;
  }
  for (std::size_t n : {std::size_t{65537}, std::size_t{8 * 64 * 200 + 63},
                        std::size_t{8 * 64 * 201 + 5 * 64}, std::size_t{300007}}) {
    auto v = gaussian(n, 60 + n);
    for (std::size_t i = 0; i < n; i += 97) v[i] = -v[i - i % 2];  // ties of magnitude
    for (std::int64_t k : {std::int64_t{1}, std::int64_t{97}, static_cast<std::int64_t>(n / 100),
                           static_cast<std::int64_t>(n / 3)}) {
      std::vector<std::uint32_t> idx;
      std::vector<float> val;
      topk_select(v, k, idx, val);
      const auto keep = reference_topk(v, static_cast<std::size_t>(k));
      INFO(isa << ": n = " << n << ", k = " << k);
      REQUIRE(idx == std::vector<std::uint32_t>(keep.begin(), keep.end()));
      for (std::size_t j = 0; j < idx.size(); ++j)
        REQUIRE(std::memcmp(&val[j], &v[idx[j]], sizeof(float)) == 0);
    }
  }
  // The decoders write whole 64-byte lines (streamed from 4 MB on): a round trip at a size of
  // each kind, against the sort.
  for (std::size_t n : {std::size_t{300007}, std::size_t{1100007}}) {
    const auto v = gaussian(n, 70 + n);
    auto o = opts("topk");
    o.ratio = 0.01;
    const auto out = roundtrip(*make(o), v, one_layer(static_cast<std::int64_t>(n)), {});
    std::vector<float> expect(n, 0.0f);
    for (auto j : reference_topk(v, static_cast<std::size_t>(sparse_k(0.01, 0, n)))) expect[j] = v[j];
    INFO(isa << ": round trip at n = " << n);
    REQUIRE(same_bits(out, expect));
  }
  force_isa("");
}

// ---- rand-k ----------------------------------------------------------------------------------

TEST_CASE("compress: rand-k indices follow Note [Rand-k indices]", "[compress]") {
  std::vector<std::uint32_t> got;
  for (std::uint32_t n : {1u, 7u, 100u, 1000003u}) {
    for (std::uint32_t k : {1u, n / 3 + 1, n - n / 4, n}) {
      if (k > n || k == 0) continue;
      randk_indices(0xC0FFEEull + n + k, n, k, got);
      REQUIRE(got == reference_randk(0xC0FFEEull + n + k, n, k));
    }
  }
}

TEST_CASE("compress: rand-k round-trips; biased keeps values unscaled", "[compress]") {
  for (std::size_t n : kSizes) {
    const auto v = gaussian(n, 30 + n);
    const MessageContext ctx{77, 4, 2};
    for (bool unbiased : {false, true}) {
      auto o = opts("randk");
      o.unbiased = unbiased;
      const std::int64_t k = sparse_k(o.ratio, 0, static_cast<std::int64_t>(n));
      Encoded e;
      const auto out = roundtrip(*make(o), v, one_layer(static_cast<std::int64_t>(n)), ctx, &e);
      REQUIRE(e.bits == 64 + 32 * static_cast<std::uint64_t>(k));
      std::uint64_t seed;
      std::memcpy(&seed, e.bytes.data(), 8);
      REQUIRE(seed == ctx.shared_rng(0).next_u64());
      const auto keep =
          reference_randk(seed, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(k));
      const float scale = unbiased ? static_cast<float>(double(n) / double(k)) : 1.0f;
      std::vector<float> expect(n, 0.0f);
      for (auto j : keep) expect[j] = unbiased ? v[j] * scale : v[j];
      REQUIRE(same_bits(out, expect));
    }
  }
}

TEST_CASE("compress: rand-k indices are shared by clients and change with the round",
          "[compress]") {
  const std::size_t n = 1000;
  const auto v = gaussian(n, 5);
  auto o = opts("randk");
  o.k = 10;
  const auto c = make(o);
  auto support = [&](std::uint32_t round, std::uint32_t client) {
    const auto out = roundtrip(*c, v, one_layer(n), {42, round, client});
    std::vector<std::size_t> s;
    for (std::size_t i = 0; i < n; ++i)
      if (out[i] != 0.0f) s.push_back(i);
    REQUIRE(s.size() == 10);
    return s;
  };
  REQUIRE(support(3, 0) == support(3, 9));
  REQUIRE(support(3, 0) != support(4, 0));
  // another layer of the same round draws from its own stream
  const std::vector<LayerShape> two = {{0, 1000, 1}, {1, 1000, 1}};
  std::vector<float> vv(v);
  vv.insert(vv.end(), v.begin(), v.end());
  const auto out = roundtrip(*c, vv, two, {42, 3, 0});
  REQUIRE(!std::equal(out.begin(), out.begin() + 1000, out.begin() + 1000));
}

TEST_CASE("compress: unbiased rand-k is unbiased", "[compress]") {
  const std::vector<float> v = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f, 3.0f, -2.0f, 0.1f, 1.0f};
  const std::size_t n = v.size();
  auto o = opts("randk");
  o.k = 3;
  o.unbiased = true;
  const auto c = make(o);
  const int N = 20000;
  std::vector<double> sum(n, 0), sum2(n, 0);
  std::vector<int> kept(n, 0);
  for (int round = 0; round < N; ++round) {
    const auto out = roundtrip(*c, v, one_layer(n), {11, static_cast<std::uint32_t>(round), 0});
    for (std::size_t i = 0; i < n; ++i) {
      sum[i] += out[i];
      sum2[i] += double{out[i]} * out[i];
      kept[i] += out[i] != 0.0f;
    }
  }
  const double p = 3.0 / 10.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double freq = double(kept[i]) / N, ftol = 5 * std::sqrt(p * (1 - p) / N);
    INFO("i = " << i << " kept " << freq << " expected " << p << " tol " << ftol);
    REQUIRE(std::fabs(freq - p) <= ftol);
    const double mean = sum[i] / N, sigma = std::sqrt(sum2[i] / N - mean * mean);
    const double tol = 5 * sigma / std::sqrt(double(N));
    INFO("mean " << mean << " v " << v[i] << " tol " << tol);
    REQUIRE(std::fabs(mean - v[i]) <= tol);
    // the biased variant (no n/k scaling) has mean p v_i: the tolerance is tight enough to see it
    REQUIRE(std::fabs(p * mean - v[i]) > tol);
  }
}

// ---- QSGD
// ----------------------------------------------------------------------------------------

TEST_CASE("compress: QSGD level probabilities and unbiasedness on a fixed vector", "[compress]") {
  // 20 values: the first 16 take the SIMD path, the last 4 the scalar one
  const std::vector<float> v = {0.3f, -0.4f, 0.0f,  1.2f, -0.05f, 0.9f,  -2.0f, 0.6f,  0.25f, -1.1f,
                                0.7f, 0.01f, -0.3f, 1.5f, 0.45f,  -0.8f, 0.3f,  -0.4f, 0.0f,  1.2f};
  const std::size_t n = v.size();
  auto o = opts("qsgd");
  o.levels = 4;
  const auto c = make(o);
  double sq = 0;
  for (float x : v) sq += double{x} * x;
  const float nu = reference_l2(v.data(), n);
  REQUIRE(std::fabs(nu - std::sqrt(sq)) <= 1e-6 * std::sqrt(sq));
  const float r256 = 1024.0f / nu, q = nu / 4.0f;
  const int N = 20000;
  std::vector<int> upper(n, 0);
  std::vector<double> sum(n, 0), sum2(n, 0);
  std::vector<int> low(n);
  std::vector<double> p(n);
  for (std::size_t i = 0; i < n; ++i) {
    // s|v|/nu = z/256 (below s here), l = floor(z/256), p = z/256 - l: Note [QSGD rounding]
    const double z = std::fabs(v[i]) * r256;
    low[i] = static_cast<int>(std::floor(z / 256));
    p[i] = z / 256 - low[i];
  }
  for (int round = 0; round < N; ++round) {
    Encoded e;
    const auto out = roundtrip(*c, v, one_layer(n), {5, static_cast<std::uint32_t>(round), 1}, &e);
    REQUIRE(e.bits == 32 + n * 4);  // s = 4: 1 sign + 3 level bits
    float wire_nu;
    std::memcpy(&wire_nu, e.bytes.data(), 4);
    REQUIRE(wire_nu == nu);
    for (std::size_t i = 0; i < n; ++i) {
      const float level = std::fabs(out[i]) / q;
      REQUIRE((level == static_cast<float>(low[i]) || level == static_cast<float>(low[i] + 1)));
      upper[i] += level == static_cast<float>(low[i] + 1);
      sum[i] += out[i];
      sum2[i] += double{out[i]} * out[i];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const double freq = double(upper[i]) / N;
    const double ftol = 5 * std::sqrt(p[i] * (1 - p[i]) / N);
    INFO("i = " << i << " P(upper) " << freq << " expected " << p[i] << " tol " << ftol);
    if (p[i] == 0) {
      REQUIRE(upper[i] == 0);
    } else {
      REQUIRE(std::fabs(freq - p[i]) <= ftol);
    }
    const double mean = sum[i] / N;
    const double sigma = std::sqrt(std::max(0.0, sum2[i] / N - mean * mean));
    const double tol = 5 * sigma / std::sqrt(double(N)) + 1e-6 * std::fabs(v[i]);
    INFO("mean " << mean << " v " << v[i] << " tol " << tol);
    REQUIRE(std::fabs(mean - v[i]) <= tol);
    // always rounding down would miss by q p_i: far outside the tolerance when p_i is not small
    if (p[i] > 0.05) REQUIRE(q * p[i] > 3 * tol);
  }
}

// Selects a QSGD kernel for one test and restores the default when the test ends, also when an
// assertion fails on the way.
// Selects the QSGD kernels of one path, and the ISA decision with them (the norm and the Philox
// bytes follow active_isa()).
struct QsgdKernel {
  explicit QsgdKernel(const std::string& isa)
      : selected(select_qsgd_kernel(isa) && force_isa(isa == "sse2" ? "generic" : isa)) {
    if (!selected) WARN("this CPU lacks " << isa << ": not checked");
  }
  ~QsgdKernel() {
    select_qsgd_kernel("");
    force_isa("");
  }
  QsgdKernel(const QsgdKernel&) = delete;
  QsgdKernel& operator=(const QsgdKernel&) = delete;
  bool selected;
};

TEST_CASE("compress: QSGD round-trips exactly against the scalar reference", "[compress]") {
  const std::string isa = GENERATE(as<std::string>{}, "avx512", "avx2", "sse2");
  const QsgdKernel kernel(isa);
  if (!kernel.selected) return;
  struct Case {
    int s;
    const char* norm;
    std::int64_t bucket;
  };
  for (const Case& cs :
       {Case{4, "l2", 0}, Case{16, "l2", 0}, Case{1, "max", 0}, Case{4, "max", 512},
        Case{127, "l2", 100}, Case{255, "l2", 0}, Case{1000, "max", 0}, Case{2, "l2", 3}}) {
    for (std::size_t n : kSizes) {
      auto v = gaussian(n, 40 + n + static_cast<std::size_t>(cs.s));
      if (n > 100)
        for (std::size_t i = 0; i < 1000; ++i) v[i] = 0.0f;  // a zero bucket (nu = 0)
      const MessageContext ctx{123, 9, 4};
      const auto layers = one_layer(static_cast<std::int64_t>(n));
      const auto ref =
          reference_qsgd(v, layers, ctx, cs.s, std::string(cs.norm) == "max", cs.bucket);
      std::vector<float> decoded[2];
      for (int elias = 0; elias < 2; ++elias) {
        auto o = opts("qsgd");
        o.levels = cs.s;
        o.norm = cs.norm;
        o.bucket = cs.bucket;
        o.coding = elias ? "elias" : "fixed";
        INFO("s = " << cs.s << " norm " << cs.norm << " bucket " << cs.bucket << " n = " << n
                    << " coding " << o.coding);
        Encoded e;
        decoded[elias] = roundtrip(*make(o), v, layers, ctx, &e);
        REQUIRE(e.bits == (elias ? ref.elias_bits : ref.fixed_bits));
        REQUIRE(same_bits(decoded[elias], ref.decoded));
      }
      REQUIRE(same_bits(decoded[0], decoded[1]));  // elias and fixed decode identically
    }
  }
}

// The AVX-512 decoder writes the values before the output's first 64-byte boundary and after its
// last one with masked stores, and streams the lines between once the layer has >= 2^20 values;
// small buckets repeat head and tail in every bucket. Every offset of the output within a line
// must give the same values, and nothing outside the layer may be written.
TEST_CASE("compress: QSGD decodes the same at every output alignment", "[compress]") {
  const std::string isa = GENERATE(as<std::string>{}, "avx512", "avx2", "sse2");
  const QsgdKernel kernel(isa);
  if (!kernel.selected) return;
  struct Case {
    int s;
    std::int64_t bucket;
    std::size_t n;
  };
  for (const Case& cs : {Case{4, 512, (std::size_t{1} << 20) + 77}, Case{4, 100, 5003},
                         Case{16, 37, 4099}, Case{4, 0, 19}, Case{3, 512, 3000}}) {
    const auto v = gaussian(cs.n, 7 + cs.n);
    const MessageContext ctx{5, 1, 2};
    const auto layers = one_layer(static_cast<std::int64_t>(cs.n));
    auto o = opts("qsgd");
    o.levels = cs.s;
    o.bucket = cs.bucket;
    const auto c = make(o);
    const Encoded e = encode(*c, v, layers, ctx, {});
    std::vector<float> want(cs.n);
    decode(*c, e, layers, ctx, want);
    // a 64-byte aligned buffer with 16 guard floats before and after any placement
    std::vector<float> buf(cs.n + 48 + 16);
    const auto base = reinterpret_cast<std::uintptr_t>(buf.data());
    const std::size_t first = ((base + 63) / 64 * 64 - base) / sizeof(float) + 16;
    for (std::size_t off = 0; off < 16; ++off) {
      INFO(isa << ": s = " << cs.s << " bucket " << cs.bucket << " n = " << cs.n << " offset "
               << off);
      std::fill(buf.begin(), buf.end(), -7.0f);
      float* out = buf.data() + first + off;
      decode(*c, e, layers, ctx, std::span<float>(out, cs.n));
      REQUIRE(std::memcmp(out, want.data(), cs.n * sizeof(float)) == 0);
      REQUIRE(std::all_of(buf.data(), out, [](float x) { return x == -7.0f; }));
      REQUIRE(std::all_of(out + cs.n, buf.data() + buf.size(), [](float x) { return x == -7.0f; }));
    }
  }
}

// ---- drivers, determinism, registry ------------------------------------------------------------

TEST_CASE("compress: multi-layer messages and global scope", "[compress]") {
  std::vector<LayerView> views = {{"a", 0, 7, 1}, {"b", 7, 1, 1}, {"c", 8, 3, 333335}};
  const auto layers = message_layers(views, false);
  REQUIRE(layers.size() == 3);
  REQUIRE(layers[2].index == 2);
  REQUIRE(layers[2].rows == 3);
  REQUIRE(layers[2].cols == 333335);
  const auto global = message_layers(views, true);
  REQUIRE(global.size() == 1);
  REQUIRE(global[0].size() == 8 + 3 * 333335);
  const std::size_t d = 8 + 3 * 333335;
  const auto v = gaussian(d, 99);
  const MessageContext ctx{1, 2, 3};
  // qsgd: the private stream continues from layer to layer
  auto o = opts("qsgd");
  o.coding = "elias";
  const auto ref = reference_qsgd(v, layers, ctx, 4, false, 0);
  Encoded e;
  REQUIRE(same_bits(roundtrip(*make(o), v, layers, ctx, &e), ref.decoded));
  REQUIRE(e.bits == ref.elias_bits);
  // top-k per layer keeps k of every layer
  o = opts("topk");
  o.k = 2;
  const auto out = roundtrip(*make(o), v, layers, ctx, &e);
  REQUIRE(e.bits ==
          static_cast<std::uint64_t>(2 * (32 + 3) + 1 * 32 + 2 * (32 + index_bits(3 * 333335))));
  REQUIRE(std::count_if(out.begin(), out.end(), [](float x) { return x != 0; }) == 5);
  // every compressor is a pure function of (v, layers, ctx)
  for (const char* name : {"none", "sign", "topk", "randk", "qsgd"}) {
    const auto c = make(opts(name));
    const auto a = encode(*c, v, global, ctx, {}), b = encode(*c, v, global, ctx, {});
    REQUIRE(a.bytes == b.bytes);
  }
  const auto c = make(opts("qsgd"));
  REQUIRE(encode(*c, v, global, ctx, {}).bytes != encode(*c, v, global, {1, 2, 4}, {}).bytes);
  // a truncated message is rejected
  auto bad = encode(*c, v, global, ctx, {});
  bad.bits -= 8;
  bad.bytes.pop_back();
  std::vector<float> sink(d);
  REQUIRE_THROWS(decode(*c, bad, global, ctx, sink));
}

TEST_CASE("compress: make_compressor rejects bad options naming the key", "[compress]") {
  using Catch::Matchers::Contains;
  auto expect = [](CompressorOptions o, const std::string& text) {
    INFO("expected: " << text);
    REQUIRE_THROWS_AS(make_compressor(o), UsageError);
    REQUIRE_THROWS_WITH(make_compressor(o), Contains(text));
  };
  auto o = opts("qsgd");
  o.levels = 0;
  expect(o, "compressor.levels = 0 is not allowed: expected >= 1");
  o.levels = 70000;
  expect(o, "compressor.levels = 70000");
  o = opts("qsgd");
  o.norm = "l3";
  expect(o, "compressor.norm = 'l3'");
  o = opts("qsgd");
  o.coding = "huffman";
  expect(o, "compressor.coding = 'huffman'");
  o = opts("qsgd");
  o.bucket = -1;
  expect(o, "compressor.bucket = -1");
  o = opts("sign");
  o.scale = "l2";
  expect(o, "compressor.scale = 'l2'");
  for (const char* name : {"topk", "randk"}) {
    o = opts(name);
    o.ratio = 0;
    expect(o, "compressor.ratio = 0 is not allowed");
    o.ratio = 1.5;
    expect(o, "compressor.ratio = 1.5");
    o.ratio = 0.1;
    o.k = -2;
    expect(o, "compressor.k = -2");
    o.section = "downlink_compressor";  // the section the options came from
    expect(o, "downlink_compressor.k = -2 is not allowed: expected >= 0 (0: use "
              "downlink_compressor.ratio)");
  }
  o = opts("topk");
  o.ratio = 0;
  o.k = 5;  // a fixed k makes the ratio irrelevant
  REQUIRE_NOTHROW(make_compressor(o));
  o = opts("powersgd");
  o.rank = 0;
  expect(o, "compressor.rank = 0");
  o = opts("powersgd");
  o.mode = "all";
  expect(o, "compressor.mode = 'all'");
  expect(opts("zip"),
         "compressor.name = 'zip' is not known: expected one of none, sign, topk, "
         "randk, qsgd, powersgd");
  for (const char* name : {"none", "sign", "topk", "randk", "qsgd", "powersgd"})
    REQUIRE(make_compressor(opts(name))->name() == name);
}
