// PowerSGD (docs/algorithms.md §2): exact low-rank recovery, Gram-Schmidt, one hand-checked step on
// two clients (tests/powersgd_reference.py), the per_client wire format, warm start, address
// independence, the products' rounding bounds, the ISA paths (Note [PowerSGD lanes]) and fused
// error feedback (Note [PowerSGD passes]).
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "compress/bitstream.h"
#include "compress/compressor.h"
#include "compress/powersgd.h"
#include "core/isa.h"
#include "core/rng.h"

using cohort::Purpose;
using cohort::Rng;
using namespace cohort::compress;
using namespace cohort::compress::powersgd;

namespace {

struct Message {
  std::vector<std::uint8_t> bytes;
  std::uint64_t bits = 0;
};

// One layer through encode_layer (the drivers in compressor.cpp are not needed here).
Message encode_one(const Compressor& c, std::span<const float> v, const LayerShape& layer,
                   const MessageContext& ctx, std::span<float> state) {
  BitWriter w;
  Rng private_rng = ctx.private_rng();
  c.encode_layer(v, layer, ctx, state, private_rng, w);
  Message m;
  m.bits = w.bits();
  m.bytes = w.finish();
  return m;
}

void decode_one(const Compressor& c, const Message& m, const LayerShape& layer,
                const MessageContext& ctx, std::span<float> out) {
  BitReader r(m.bytes.data(), m.bits);
  c.decode_layer(r, layer, ctx, out);
  REQUIRE(r.position() == m.bits);
}

std::vector<float> read_floats(BitReader& r, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = r.get_f32();
  return v;
}

std::vector<float> random_matrix(std::int64_t n, std::uint32_t stream) {
  Rng rng(2024, 0, stream, Purpose::kTest);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

double max_abs(std::span<const float> v) {
  double m = 0.0;
  for (const float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

// M = U V^T (6 x 5, rank 2) of small integers: exact in float.
std::vector<float> rank_two_matrix() {
  const float u[6][2] = {{1, 2}, {0, 1}, {-1, 3}, {2, 0}, {1, -1}, {3, 1}};
  const float v[5][2] = {{1, 0}, {2, -1}, {0, 1}, {-1, 2}, {1, 1}};
  std::vector<float> m(30);
  for (int i = 0; i < 6; ++i)
    for (int k = 0; k < 5; ++k) m[i * 5 + k] = u[i][0] * v[k][0] + u[i][1] * v[k][1];
  return m;
}

}  // namespace

TEST_CASE("powersgd: compressible layers, effective rank and state size", "[powersgd]") {
  REQUIRE(compressible(2, 2));
  REQUIRE(compressible(512, 4608));
  REQUIRE_FALSE(compressible(10, 1));
  REQUIRE_FALSE(compressible(1, 10));
  REQUIRE_FALSE(compressible(0, 0));
  REQUIRE(effective_rank(6, 5, 2) == 2);
  REQUIRE(effective_rank(6, 5, 9) == 5);
  REQUIRE(effective_rank(3, 5, 9) == 3);

  const PowerSgdCompressor warm(4, true), cold(4, false);
  REQUIRE(warm.state_floats(LayerShape{0, 6, 5}) == 5 * 4 + 1);
  REQUIRE(warm.state_floats(LayerShape{0, 6, 3}) == 3 * 3 + 1);  // r' = 3
  REQUIRE(warm.state_floats(LayerShape{0, 6, 1}) == 0);          // a bias goes as float32
  REQUIRE(cold.state_floats(LayerShape{0, 6, 5}) == 0);
}

TEST_CASE("powersgd: an exactly rank-2 matrix is recovered when r' >= 2, not when r' = 1",
          "[powersgd]") {
  const std::vector<float> m = rank_two_matrix();
  const double scale = max_abs(m);
  const LayerShape layer{3, 6, 5};
  const MessageContext ctx{77, 5, 1};
  auto error_at_rank = [&](int rank) {
    const PowerSgdCompressor c(rank, false);
    const Message msg = encode_one(c, m, layer, ctx, {});
    std::vector<float> out(30);
    decode_one(c, msg, layer, ctx, out);
    return max_abs_diff(out, m) / scale;
  };
  const double e2 = error_at_rank(2), e1 = error_at_rank(1);
  INFO("relative errors: r=2 " << e2 << ", r=1 " << e1);
  REQUIRE(e2 < 1e-4);
  REQUIRE(e1 > 0.05);  // a rank-1 approximation misses the second singular direction
}

TEST_CASE("powersgd: an exactly rank-3 matrix is recovered when r' = 3", "[powersgd]") {
  // 7 x 6, M = U V^T with U 7 x 3, V 6 x 3 of small integers.
  const float u[7][3] = {{1, 0, 2},  {0, 1, -1}, {3, 1, 0}, {-1, 2, 1},
                         {2, -1, 1}, {0, 0, 3},  {1, 1, 1}};
  const float v[6][3] = {{1, 2, 0}, {0, 1, 1}, {-2, 0, 1}, {1, -1, 2}, {3, 0, -1}, {0, 2, 2}};
  std::vector<float> m(42);
  for (int i = 0; i < 7; ++i)
    for (int k = 0; k < 6; ++k)
      m[i * 6 + k] = u[i][0] * v[k][0] + u[i][1] * v[k][1] + u[i][2] * v[k][2];
  const LayerShape layer{0, 7, 6};
  const MessageContext ctx{5, 1, 2};
  for (const int rank : {3, 2}) {
    const PowerSgdCompressor c(rank, false);
    std::vector<float> out(42);
    decode_one(c, encode_one(c, m, layer, ctx, {}), layer, ctx, out);
    const double err = max_abs_diff(out, m) / max_abs(m);
    INFO("rank " << rank << " relative error " << err);
    if (rank == 3)
      REQUIRE(err < 1e-4);
    else
      REQUIRE(err > 0.05);
  }
}

TEST_CASE("powersgd: r' above the rank recovers M when the extra columns of P are zero",
          "[powersgd]") {
  // The rank-2 matrix with r = 3 and a starting Q whose third column lies in the null space of
  // M (V^T q3 = 0 exactly): P's third column is exactly zero, Gram-Schmidt keeps it zero
  // (0 / (0 + 1e-8)), and P_hat Q^T = M. (With a random third column, P's third column is a
  // combination of the first two and Gram-Schmidt normalises their rounding residue, whose
  // direction is arbitrary, so r' > rank does not recover M to rounding in general.)
  const std::vector<float> m = rank_two_matrix();
  // V = [[1,0],[2,-1],[0,1],[-1,2],[1,1]] and q3 = (2, -1, -1, 0, 0): V^T q3 = (2 - 2, 1 - 1).
  const std::vector<float> q = {1, 0, 2,   // Q is 5 x 3, row-major
                                0, 1, -1,  //
                                1, 1, -1,  //
                                2, 0, 0,   //
                                0, 1, 0};
  std::vector<float> p(18), q_new(15), out(30);
  multiply_p(m.data(), q.data(), 6, 5, 3, p.data());
  for (int i = 0; i < 6; ++i) REQUIRE(p[i * 3 + 2] == 0.0f);
  orthonormalize(p.data(), 6, 3);
  for (const float x : p) REQUIRE_FALSE(std::isnan(x));
  for (int i = 0; i < 6; ++i) REQUIRE(p[i * 3 + 2] == 0.0f);
  multiply_q(m.data(), p.data(), 6, 5, 3, q_new.data());
  reconstruct(p.data(), q_new.data(), 6, 5, 3, out.data());
  REQUIRE(max_abs_diff(out, m) / max_abs(m) < 1e-4);
}

TEST_CASE("powersgd: orthonormalize gives orthonormal columns", "[powersgd]") {
  const std::int64_t rows = 50;
  const int r = 4;
  std::vector<float> p = random_matrix(rows * r, 1);
  orthonormalize(p.data(), rows, r);
  for (int j = 0; j < r; ++j)
    for (int k = j; k < r; ++k) {
      double dot = 0.0;
      for (std::int64_t i = 0; i < rows; ++i) dot += double(p[i * r + j]) * double(p[i * r + k]);
      INFO("columns " << j << ", " << k << ": dot " << dot);
      if (j == k)
        REQUIRE(std::fabs(dot - 1.0) < 1e-6);
      else
        REQUIRE(std::fabs(dot) < 1e-6);
    }
}

TEST_CASE("powersgd: orthonormalize keeps a zero column zero (the 1e-8)", "[powersgd]") {
  // Columns: (3, 4, 0), zero, (1, 1, 1) as a 3 x 3 row-major matrix.
  std::vector<float> p = {3, 0, 1,  //
                          4, 0, 1,  //
                          0, 0, 1};
  orthonormalize(p.data(), 3, 3);
  for (const float x : p) REQUIRE(std::isfinite(x));
  for (int i = 0; i < 3; ++i) REQUIRE(p[i * 3 + 1] == 0.0f);
  REQUIRE(p[0] == Approx(0.6).epsilon(1e-7));
  REQUIRE(p[3] == Approx(0.8).epsilon(1e-7));
  REQUIRE(p[6] == 0.0f);
  // (1,1,1) - 1.4 (0.6, 0.8, 0) = (0.16, -0.12, 1), norm sqrt(1.04).
  const double n = std::sqrt(1.04);
  REQUIRE(p[2] == Approx(0.16 / n).epsilon(1e-6));
  REQUIRE(p[5] == Approx(-0.12 / n).epsilon(1e-6));
  REQUIRE(p[8] == Approx(1.0 / n).epsilon(1e-6));

  std::vector<float> zero(8, 0.0f);  // an all-zero P (a zero message) stays zero
  orthonormalize(zero.data(), 4, 2);
  REQUIRE(zero == std::vector<float>(8, 0.0f));
}

TEST_CASE("powersgd: one step on two clients matches tests/powersgd_reference.py", "[powersgd]") {
  // M1, M2 (3 x 2) and the starting Q of tests/powersgd_reference.py; mode reduce:
  // P = M1 Q + M2 Q, P_hat = orthonormalize(P), Q = (M1^T P_hat + M2^T P_hat) / 2,
  // decoded = P_hat Q^T, e_i = M_i - decoded. Expected values: the script's output (float64),
  // row-major, tolerance 1e-5.
  const std::vector<float> m1 = {2, -1, 1, 3, 0, 2};
  const std::vector<float> m2 = {1, 1, -2, 0, 3, 1};
  struct Case {
    int r;
    std::vector<float> q0, p, p_hat, q, decoded, e1, e2;
  };
  const std::vector<Case> cases = {
      // case r1
      //   P       3 2 6
      //   P_hat   0.428571428 0.285714285 0.857142856
      //   Q       1.78571428 1.71428571
      //   decoded 0.76530612 0.734693875 0.51020408 0.489795917 1.53061224 1.46938775
      //   e1      1.23469388 -1.73469388 0.48979592 2.51020408 -1.53061224 0.530612249
      //   e2      0.23469388 0.265306125 -2.51020408 -0.489795917 1.46938776 -0.469387751
      {1,
       {1, 1},
       {3, 2, 6},
       {0.428571428f, 0.285714285f, 0.857142856f},
       {1.78571428f, 1.71428571f},
       {0.76530612f, 0.734693875f, 0.51020408f, 0.489795917f, 1.53061224f, 1.46938775f},
       {1.23469388f, -1.73469388f, 0.48979592f, 2.51020408f, -1.53061224f, 0.530612249f},
       {0.23469388f, 0.265306125f, -2.51020408f, -0.489795917f, 1.46938776f, -0.469387751f}},
      // case r2
      //   P       3 0 2 -3 6 -3
      //   P_hat   0.428571428 0.587995145 0.285714285 -0.808493328 0.857142856 -0.0244998011
      //   Q       1.78571428 1.24948968 1.71428571 -1.24948969
      //   decoded 1.49999999 1.92865679e-09 -0.499999989 1.5 1.49999999 1.5
      //   e1      0.500000014 -1 1.49999999 1.5 -1.49999999 0.5
      //   e2      -0.499999986 0.999999998 -1.50000001 -1.5 1.50000001 -0.5
      {2,
       {1, 0, 1, -1},
       {3, 0, 2, -3, 6, -3},
       {0.428571428f, 0.587995145f, 0.285714285f, -0.808493328f, 0.857142856f, -0.0244998011f},
       {1.78571428f, 1.24948968f, 1.71428571f, -1.24948969f},
       {1.49999999f, 1.92865679e-09f, -0.499999989f, 1.5f, 1.49999999f, 1.5f},
       {0.500000014f, -1, 1.49999999f, 1.5f, -1.49999999f, 0.5f},
       {-0.499999986f, 0.999999998f, -1.50000001f, -1.5f, 1.50000001f, -0.5f}},
  };
  for (const Case& c : cases) {
    const int r = c.r;
    INFO("case r" << r);
    std::vector<float> p1(3 * r), p2(3 * r), p(3 * r);
    multiply_p(m1.data(), c.q0.data(), 3, 2, r, p1.data());
    multiply_p(m2.data(), c.q0.data(), 3, 2, r, p2.data());
    for (int i = 0; i < 3 * r; ++i) p[i] = p1[i] + p2[i];  // all-reduce-sum
    REQUIRE(max_abs_diff(p, c.p) < 1e-5);
    orthonormalize(p.data(), 3, r);
    REQUIRE(max_abs_diff(p, c.p_hat) < 1e-5);
    std::vector<float> q1(2 * r), q2(2 * r), q(2 * r);
    multiply_q(m1.data(), p.data(), 3, 2, r, q1.data());
    multiply_q(m2.data(), p.data(), 3, 2, r, q2.data());
    for (int i = 0; i < 2 * r; ++i) q[i] = (q1[i] + q2[i]) / 2;  // all-reduce-mean
    REQUIRE(max_abs_diff(q, c.q) < 1e-5);
    std::vector<float> decoded(6), e1(6), e2(6);
    reconstruct(p.data(), q.data(), 3, 2, r, decoded.data());
    REQUIRE(max_abs_diff(decoded, c.decoded) < 1e-5);
    for (int i = 0; i < 6; ++i) {
      e1[i] = m1[i] - decoded[i];
      e2[i] = m2[i] - decoded[i];
    }
    REQUIRE(max_abs_diff(e1, c.e1) < 1e-5);
    REQUIRE(max_abs_diff(e2, c.e2) < 1e-5);
  }
}

TEST_CASE("powersgd: per_client wire size is r'(rows + cols) floats, a bias goes verbatim",
          "[powersgd]") {
  const MessageContext ctx{9, 3, 4};
  struct Case {
    std::int64_t rows, cols;
    int rank;
    std::uint64_t bits;
  };
  for (const Case& c :
       {Case{7, 5, 2, 32 * 2 * (7 + 5)}, Case{7, 5, 10, 32 * 5 * (7 + 5)},
        Case{2, 2, 1, 32 * 1 * (2 + 2)}, Case{7, 1, 2, 32 * 7}, Case{1, 9, 3, 32 * 9}}) {
    INFO(c.rows << " x " << c.cols << " rank " << c.rank);
    const LayerShape layer{1, c.rows, c.cols};
    const std::vector<float> v = random_matrix(layer.size(), 2);
    for (const bool warm : {false, true}) {
      const PowerSgdCompressor comp(c.rank, warm);
      std::vector<float> state(static_cast<std::size_t>(comp.state_floats(layer)), 0.0f);
      const Message msg = encode_one(comp, v, layer, ctx, state);
      REQUIRE(msg.bits == c.bits);
      REQUIRE(msg.bytes.size() == (c.bits + 7) / 8);
      if (!compressible(c.rows, c.cols)) {
        std::vector<float> out(v.size());
        decode_one(comp, msg, layer, ctx, out);
        REQUIRE(out == v);  // bit-exact
      }
    }
  }
}

TEST_CASE("powersgd: per_client round trip decodes P_hat Q^T of the sent factors", "[powersgd]") {
  const std::int64_t rows = 40, cols = 33;
  const int r = 3;
  const LayerShape layer{2, rows, cols};
  const MessageContext ctx{11, 7, 5};
  const std::vector<float> m = random_matrix(rows * cols, 3);
  const PowerSgdCompressor comp(r, false);
  const Message msg = encode_one(comp, m, layer, ctx, {});

  BitReader reader(msg.bytes.data(), msg.bits);
  const std::vector<float> p_hat = read_floats(reader, rows * r);
  const std::vector<float> q = read_floats(reader, cols * r);
  REQUIRE(reader.position() == msg.bits);

  // The sent factors are the power step from the shared stream's starting Q.
  std::vector<float> q0(cols * r), p(rows * r), q1(cols * r);
  initial_q(ctx, layer, r, q0.data());
  multiply_p(m.data(), q0.data(), rows, cols, r, p.data());
  orthonormalize(p.data(), rows, r);
  multiply_q(m.data(), p.data(), rows, cols, r, q1.data());
  REQUIRE(p_hat == p);
  REQUIRE(q == q1);

  std::vector<float> decoded(rows * cols), expected(rows * cols);
  decode_one(comp, msg, layer, ctx, decoded);
  reconstruct(p_hat.data(), q.data(), rows, cols, r, expected.data());
  REQUIRE(decoded == expected);

  // Q comes from the layer's shared stream: another layer index or round gives another Q.
  std::vector<float> other(cols * r);
  initial_q(ctx, LayerShape{3, rows, cols}, r, other.data());
  REQUIRE(other != q0);
  initial_q(MessageContext{11, 8, 5}, layer, r, other.data());
  REQUIRE(other != q0);
  initial_q(MessageContext{11, 7, 6}, layer, r, other.data());  // the client does not matter
  REQUIRE(other == q0);
}

TEST_CASE("powersgd: warm start starts from the client's previous Q", "[powersgd]") {
  const std::int64_t rows = 12, cols = 10;
  const int r = 2;
  const LayerShape layer{0, rows, cols};
  const MessageContext round0{13, 0, 2}, round1{13, 1, 2};
  const std::vector<float> m0 = random_matrix(rows * cols, 4);
  const std::vector<float> m1 = random_matrix(rows * cols, 5);
  const PowerSgdCompressor warm(r, true), cold(r, false);
  std::vector<float> state(static_cast<std::size_t>(warm.state_floats(layer)), 0.0f);
  REQUIRE(state.size() == cols * r + 1);

  // First message: no previous Q, so the same as a cold encode; the sent Q is remembered.
  const Message first = encode_one(warm, m0, layer, round0, state);
  REQUIRE(first.bytes == encode_one(cold, m0, layer, round0, {}).bytes);
  REQUIRE(state[cols * r] != 0.0f);
  BitReader reader(first.bytes.data(), first.bits);
  read_floats(reader, rows * r);
  const std::vector<float> sent_q = read_floats(reader, cols * r);
  REQUIRE(std::vector<float>(state.begin(), state.begin() + cols * r) == sent_q);

  // Second message: starts from the stored Q, not from the round's shared stream.
  const Message second = encode_one(warm, m1, layer, round1, state);
  REQUIRE(second.bits == first.bits);
  REQUIRE(second.bytes != encode_one(cold, m1, layer, round1, {}).bytes);
  std::vector<float> p(rows * r), q(cols * r);
  multiply_p(m1.data(), sent_q.data(), rows, cols, r, p.data());
  orthonormalize(p.data(), rows, r);
  multiply_q(m1.data(), p.data(), rows, cols, r, q.data());
  BitReader reader2(second.bytes.data(), second.bits);
  REQUIRE(read_floats(reader2, rows * r) == p);
  REQUIRE(read_floats(reader2, cols * r) == q);
  REQUIRE(std::vector<float>(state.begin(), state.begin() + cols * r) == q);

  // An empty state (a client that keeps none) encodes cold; a wrong-sized one is an error.
  REQUIRE(encode_one(warm, m1, layer, round1, {}).bytes ==
          encode_one(cold, m1, layer, round1, {}).bytes);
  std::vector<float> short_state(5, 0.0f);
  REQUIRE_THROWS_AS(encode_one(warm, m1, layer, round1, short_state), std::invalid_argument);
}

TEST_CASE("powersgd: results depend only on values, not on buffer addresses", "[powersgd]") {
  // Note [PowerSGD lanes]: sums in an order fixed by the indices, so tails only (6 x 6 at r = 4,
  // 5 x 4 at r = 2), r = 1 and whole 16-lane chunks give the same values with the message and
  // the decoded output at offsets of 1..3 floats and with other work in between.
  struct Case {
    std::int64_t rows, cols;
    int rank;
  };
  const MessageContext ctx{21, 2, 3};
  for (const Case& c :
       {Case{6, 6, 4}, Case{5, 4, 2}, Case{30, 20, 1}, Case{40, 33, 3}, Case{64, 96, 4}}) {
    INFO(c.rows << " x " << c.cols << " rank " << c.rank);
    const LayerShape layer{1, c.rows, c.cols};
    const std::int64_t n = layer.size();
    const std::vector<float> m = random_matrix(n, 6);
    const PowerSgdCompressor comp(c.rank, true);
    std::vector<float> state(static_cast<std::size_t>(comp.state_floats(layer)), 0.0f);
    const Message msg = encode_one(comp, m, layer, ctx, state);
    const Message msg2 = encode_one(comp, m, layer, ctx, state);  // warm
    std::vector<float> decoded(n);
    decode_one(comp, msg, layer, ctx, decoded);
    for (int shift = 1; shift < 4; ++shift) {
      INFO("shift " << shift);
      const std::vector<float> noise = random_matrix(n + shift, 7);
      std::vector<float> other_state(state.size(), 0.0f), scratch(n + shift);
      decode_one(comp, encode_one(comp, std::span(noise).subspan(shift), layer, ctx, other_state),
                 layer, ctx, std::span(scratch).subspan(shift));
      std::vector<float> moved(n + shift), out(n + shift, -1.0f);
      std::copy(m.begin(), m.end(), moved.begin() + shift);
      const std::span<const float> mv = std::span<const float>(moved).subspan(shift);
      std::vector<float> st(state.size(), 0.0f);
      const Message again = encode_one(comp, mv, layer, ctx, st);
      REQUIRE(again.bytes == msg.bytes);
      REQUIRE(encode_one(comp, mv, layer, ctx, st).bytes == msg2.bytes);
      decode_one(comp, again, layer, ctx, std::span(out).subspan(shift));
      std::int64_t differ = 0;
      for (std::int64_t k = 0; k < n; ++k) differ += out[shift + k] != decoded[k];
      INFO(differ << " decoded entries differ");
      REQUIRE(differ == 0);
      REQUIRE(out[shift - 1] == -1.0f);  // nothing written before the layer
    }
  }
}

TEST_CASE("powersgd: the power-step functions do not depend on buffer addresses", "[powersgd]") {
  // mode reduce calls these on the round loop's buffers: every input and output at offsets of
  // 0..3 floats must give bit-identical P, Q and P_hat Q^T.
  struct Case {
    std::int64_t rows, cols;
    int r;
  };
  for (const Case& c : {Case{3, 2, 1}, Case{6, 6, 4}, Case{4, 5, 8}, Case{30, 20, 1},
                        Case{40, 33, 3}, Case{20, 1, 1}}) {
    INFO(c.rows << " x " << c.cols << " r " << c.r);
    const std::int64_t nm = c.rows * c.cols, np = c.rows * c.r, nq = c.cols * c.r;
    const std::vector<float> m = random_matrix(nm, 8), q0 = random_matrix(nq, 9);
    auto run = [&](int shift) {
      std::vector<float> mb(nm + shift), qb(nq + shift), pb(np + shift), q1(nq + shift),
          out(nm + shift);
      std::copy(m.begin(), m.end(), mb.begin() + shift);
      std::copy(q0.begin(), q0.end(), qb.begin() + shift);
      multiply_p(mb.data() + shift, qb.data() + shift, c.rows, c.cols, c.r, pb.data() + shift);
      orthonormalize(pb.data() + shift, c.rows, c.r);
      multiply_q(mb.data() + shift, pb.data() + shift, c.rows, c.cols, c.r, q1.data() + shift);
      reconstruct(pb.data() + shift, q1.data() + shift, c.rows, c.cols, c.r, out.data() + shift);
      std::vector<float> all(pb.begin() + shift, pb.end());
      all.insert(all.end(), q1.begin() + shift, q1.end());
      all.insert(all.end(), out.begin() + shift, out.end());
      return all;
    };
    const std::vector<float> base = run(0);
    REQUIRE(std::all_of(base.begin(), base.end(), [](float x) { return std::isfinite(x); }));
    for (int shift = 1; shift < 4; ++shift) {
      INFO("shift " << shift);
      REQUIRE(run(shift) == base);
    }
  }
}

// ---- The kernels (Note [PowerSGD lanes]) and fused error feedback (Note [PowerSGD passes]) ----

namespace {

// Restores the automatic ISA choice even when an assertion fails.
struct IsaGuard {
  ~IsaGuard() { cohort::force_isa(""); }
};

std::vector<const char*> available_isas() {
  std::vector<const char*> out = {"generic"};
  if (cohort::cpu_isa() >= cohort::Isa::kAvx2) out.push_back("avx2");
  if (cohort::cpu_isa() >= cohort::Isa::kAvx512) out.push_back("avx512");
  return out;
}

std::vector<std::uint32_t> bits_of(std::span<const float> v) {
  std::vector<std::uint32_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::bit_cast<std::uint32_t>(v[i]);
  return out;
}

// -1 when a and b hold the same bits, else the first index where they differ (or the shorter
// size): a failed REQUIRE then prints one number instead of two long vectors.
std::int64_t first_difference(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b) {
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<std::int64_t>(std::min(a.size(), b.size()));
}

std::int64_t first_difference(std::span<const float> a, std::span<const float> b) {
  return first_difference(bits_of(a), bits_of(b));
}

struct Shape {
  std::int64_t rows, cols;
  int r;
};

// Shapes that reach every part of the kernels: whole 16-lane chunks and tails (cols mod 16),
// row blocks and leftover rows (rows mod 2, 4 and 8), Q column groups and leftover columns
// (r = 1 .. 10 against groups of 2, 4 and 8), a single chunk and wide rows.
const std::vector<Shape> kernel_shapes = {{3, 2, 1},     {6, 5, 2},    {17, 33, 3},  {40, 16, 8},
                                          {37, 100, 10}, {64, 129, 4}, {2, 1000, 2}, {9, 17, 5},
                                          {5, 48, 7},    {33, 31, 6}};

// One power step with error feedback as docs/algorithms.md §2 defines it, step by step.
struct Step {
  std::vector<float> p, q, decoded, e;
  float extent = 0;
};

Step step_by_definition(const std::vector<float>& u, const std::vector<float>& e0,
                        const std::vector<float>& q0, const Shape& s) {
  Step out;
  std::vector<float> m(u.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    m[i] = u[i] + e0[i];
    out.extent = std::max(out.extent, std::fabs(m[i]));
  }
  out.p.resize(s.rows * s.r);
  out.q.resize(s.cols * s.r);
  out.decoded.resize(m.size());
  multiply_p(m.data(), q0.data(), s.rows, s.cols, s.r, out.p.data());
  orthonormalize(out.p.data(), s.rows, s.r);
  multiply_q(m.data(), out.p.data(), s.rows, s.cols, s.r, out.q.data());
  reconstruct(out.p.data(), out.q.data(), s.rows, s.cols, s.r, out.decoded.data());
  out.e.resize(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) out.e[i] = m[i] - out.decoded[i];
  return out;
}

Step fused_step(const std::vector<float>& u, const std::vector<float>& e0,
                const std::vector<float>& q0, const Shape& s) {
  Step out;
  out.e = e0;
  out.q = q0;
  out.p.resize(s.rows * s.r);
  out.decoded.resize(u.size());
  out.extent = power_step_with_feedback(u.data(), out.e.data(), s.rows, s.cols, s.r, out.q.data(),
                                        out.p.data(), out.decoded.data());
  return out;
}

void require_same_bits(const Step& a, const Step& b) {
  REQUIRE(first_difference(a.p, b.p) == -1);
  REQUIRE(first_difference(a.q, b.q) == -1);
  REQUIRE(first_difference(a.decoded, b.decoded) == -1);
  REQUIRE(first_difference(a.e, b.e) == -1);
  REQUIRE(std::bit_cast<std::uint32_t>(a.extent) == std::bit_cast<std::uint32_t>(b.extent));
}

// gamma_k = k u / (1 - k u), u = 2^-24: a float sum of k rounded products is off by at most
// gamma_k times the sum of the magnitudes (Higham, Accuracy and Stability, §3.1).
double rounding_gamma(std::int64_t k) {
  const double u = std::ldexp(1.0, -24);
  return static_cast<double>(k) * u / (1.0 - static_cast<double>(k) * u);
}

// A compressor's encoding without its fused error feedback: encode_with_feedback then runs the
// definition step by step.
class StepByStep final : public Compressor {
 public:
  explicit StepByStep(const Compressor& c) : c_(c) {}
  std::string name() const override { return c_.name(); }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& rng, BitWriter& out) const override {
    c_.encode_layer(v, layer, ctx, state, rng, out);
  }
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override {
    c_.decode_layer(in, layer, ctx, out);
  }
  std::int64_t state_floats(const LayerShape& layer) const override {
    return c_.state_floats(layer);
  }

 private:
  const Compressor& c_;
};

}  // namespace

TEST_CASE("powersgd: the products are within the rounding bound of the exact sums", "[powersgd]") {
  // Each product element is a float sum of float products: |computed - exact| is at most
  // gamma_k sum |terms| with k the terms of the longest chain (cols for P, rows for Q, r for the
  // reconstruction; the 16 lanes of P make its chains shorter still), plus one rounding of P's
  // double lane total to float. Exact values: the same products in double (exact for float
  // inputs) summed in long double.
  for (const Shape& s : kernel_shapes) {
    INFO(s.rows << " x " << s.cols << " r " << s.r);
    const std::vector<float> m = random_matrix(s.rows * s.cols, 10);
    const std::vector<float> q0 = random_matrix(s.cols * s.r, 11);
    const std::vector<float> p_hat = random_matrix(s.rows * s.r, 12);
    std::vector<float> p(s.rows * s.r), q(s.cols * s.r), out(s.rows * s.cols);
    multiply_p(m.data(), q0.data(), s.rows, s.cols, s.r, p.data());
    multiply_q(m.data(), p_hat.data(), s.rows, s.cols, s.r, q.data());
    reconstruct(p_hat.data(), q0.data(), s.rows, s.cols, s.r, out.data());
    const double u = std::ldexp(1.0, -24);
    for (std::int64_t i = 0; i < s.rows; ++i)
      for (int k = 0; k < s.r; ++k) {
        long double exact = 0, mag = 0;
        for (std::int64_t j = 0; j < s.cols; ++j) {
          const double t = double(m[i * s.cols + j]) * double(q0[j * s.r + k]);
          exact += t;
          mag += std::fabs(t);
        }
        const double bound =
            rounding_gamma(s.cols) * double(mag) + u * std::fabs(double(exact)) * 1.01;
        REQUIRE(std::fabs(double(p[i * s.r + k]) - double(exact)) <= bound);
      }
    for (std::int64_t j = 0; j < s.cols; ++j)
      for (int k = 0; k < s.r; ++k) {
        long double exact = 0, mag = 0;
        for (std::int64_t i = 0; i < s.rows; ++i) {
          const double t = double(m[i * s.cols + j]) * double(p_hat[i * s.r + k]);
          exact += t;
          mag += std::fabs(t);
        }
        REQUIRE(std::fabs(double(q[j * s.r + k]) - double(exact)) <=
                rounding_gamma(s.rows) * double(mag));
      }
    for (std::int64_t i = 0; i < s.rows; ++i)
      for (std::int64_t j = 0; j < s.cols; ++j) {
        long double exact = 0, mag = 0;
        for (int k = 0; k < s.r; ++k) {
          const double t = double(p_hat[i * s.r + k]) * double(q0[j * s.r + k]);
          exact += t;
          mag += std::fabs(t);
        }
        REQUIRE(std::fabs(double(out[i * s.cols + j]) - double(exact)) <=
                rounding_gamma(s.r) * double(mag));
      }
  }
}

TEST_CASE("powersgd: every ISA path gives the same bits", "[powersgd]") {
  // Note [PowerSGD lanes]: the paths differ in vector width and blocking, never in the order of
  // a sum, so P, Q, the reconstruction and the fused step agree bit for bit.
  IsaGuard guard;
  for (const Shape& s : kernel_shapes) {
    INFO(s.rows << " x " << s.cols << " r " << s.r);
    const std::vector<float> m = random_matrix(s.rows * s.cols, 13);
    const std::vector<float> e0 = random_matrix(s.rows * s.cols, 14);
    const std::vector<float> q0 = random_matrix(s.cols * s.r, 15);
    std::vector<std::vector<std::uint32_t>> reference;
    for (const char* isa : available_isas()) {
      INFO("isa " << isa);
      REQUIRE(cohort::force_isa(isa));
      std::vector<float> p(s.rows * s.r), q(s.cols * s.r), out(s.rows * s.cols);
      multiply_p(m.data(), q0.data(), s.rows, s.cols, s.r, p.data());
      multiply_q(m.data(), p.data(), s.rows, s.cols, s.r, q.data());
      reconstruct(p.data(), q.data(), s.rows, s.cols, s.r, out.data());
      const Step f = fused_step(m, e0, q0, s);
      const std::vector<std::vector<std::uint32_t>> got = {
          bits_of(p),   bits_of(q),         bits_of(out), bits_of(f.p),
          bits_of(f.q), bits_of(f.decoded), bits_of(f.e), {std::bit_cast<std::uint32_t>(f.extent)}};
      if (reference.empty())
        reference = got;
      else
        for (std::size_t k = 0; k < got.size(); ++k) {
          INFO("output " << k << " (p, q, out, fused p, q, decoded, e, extent)");
          REQUIRE(first_difference(got[k], reference[k]) == -1);
        }
    }
  }
}

TEST_CASE("powersgd: the fused error-feedback step equals the definition bit for bit",
          "[powersgd]") {
  // power_step_with_feedback forms M = u + e with the same float addition the definition uses,
  // then runs the same kernels in the same order, so nothing may differ.
  IsaGuard guard;
  for (const char* isa : available_isas()) {
    REQUIRE(cohort::force_isa(isa));
    for (const Shape& s : kernel_shapes) {
      INFO(isa << ": " << s.rows << " x " << s.cols << " r " << s.r);
      const std::vector<float> u = random_matrix(s.rows * s.cols, 16);
      const std::vector<float> e0 = random_matrix(s.rows * s.cols, 17);
      const std::vector<float> q0 = random_matrix(s.cols * s.r, 18);
      require_same_bits(fused_step(u, e0, q0, s), step_by_definition(u, e0, q0, s));
    }
  }
  // The extent reports what the exchange checks: a NaN, an infinity, a large value.
  const Shape s{5, 40, 2};
  const std::vector<float> q0 = random_matrix(s.cols * s.r, 19);
  std::vector<float> u = random_matrix(s.rows * s.cols, 20), e0(u.size(), 0.5f);
  u[77] = std::ldexp(1.0f, 41);
  REQUIRE(fused_step(u, e0, q0, s).extent == std::ldexp(1.0f, 41));
  u[s.rows * s.cols - 1] = std::numeric_limits<float>::infinity();  // in a tail
  REQUIRE(std::isinf(fused_step(u, e0, q0, s).extent));
  u[3] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(std::isnan(fused_step(u, e0, q0, s).extent));
}

TEST_CASE("powersgd: encode_with_feedback gives the definition's bytes, decoded values and memory",
          "[powersgd]") {
  // Several layers (matrices, a bias, a 1 x n row), warm start over three rounds: the fused
  // compressor against the same compressor run step by step.
  const std::vector<LayerShape> layers = {
      {0, 33, 40}, {1, 33, 1}, {2, 8, 100}, {3, 1, 7}, {4, 6, 5}};
  std::int64_t d = 0;
  for (const auto& l : layers) d += l.size();
  for (const int rank : {1, 3, 8}) {
    INFO("rank " << rank);
    const PowerSgdCompressor fused(rank, true);
    const StepByStep steps(fused);
    REQUIRE(fused.fuses_error_feedback());
    REQUIRE_FALSE(steps.fuses_error_feedback());
    const auto sf = static_cast<std::size_t>(total_state_floats(fused, layers));
    std::vector<float> e1(d, 0.0f), e2(d, 0.0f), s1(sf, 0.0f), s2(sf, 0.0f);
    for (std::uint32_t round = 0; round < 3; ++round) {
      const MessageContext ctx{31, round, 2};
      const std::vector<float> u = random_matrix(d, 40 + round);
      std::vector<float> v1 = u, v2 = u, out1(d), out2(d);
      float x1 = 0, x2 = 0;
      const Encoded a = encode_with_feedback(fused, v1, e1, layers, ctx, s1, out1, &x1);
      const Encoded b = encode_with_feedback(steps, v2, e2, layers, ctx, s2, out2, &x2);
      REQUIRE(a.bits == b.bits);
      REQUIRE(a.bytes == b.bytes);
      REQUIRE(first_difference(out1, out2) == -1);
      REQUIRE(first_difference(e1, e2) == -1);
      REQUIRE(s1 == s2);
      REQUIRE(x1 == x2);
      REQUIRE(v1 == u);  // the fused path leaves the message as it was
      // And the decoded values are what any rank decodes from the bytes.
      std::vector<float> again(d);
      decode(fused, a, layers, ctx, again);
      REQUIRE(first_difference(again, out1) == -1);
    }
  }
}

TEST_CASE("powersgd: the fused step recovers an exactly rank-r matrix and keeps ~no error",
          "[powersgd]") {
  // docs/algorithms.md §7 on shapes that use the vector lanes and row blocks: M = U V^T (48 x 40,
  // rank 4, small integers) arrives as u + e with e a previous error memory (both exact in
  // float, so M = u + e exactly). With r' = 4, P̂ Q^T = M up to rounding and the new memory is
  // ~0; with r' = 3 a direction is lost.
  const std::int64_t rows = 48, cols = 40;
  Rng rng(5, 0, 0, Purpose::kTest);
  auto small_int = [&] { return static_cast<float>(static_cast<int>(rng.uniform() * 7.0) - 3); };
  std::vector<float> uu(rows * 4), vv(cols * 4);
  for (auto& x : uu) x = small_int();
  for (auto& x : vv) x = small_int();
  std::vector<float> m(rows * cols), e0(rows * cols), u(rows * cols);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      float s = 0;
      for (int k = 0; k < 4; ++k) s += uu[i * 4 + k] * vv[j * 4 + k];
      m[i * cols + j] = s;
      e0[i * cols + j] = small_int() * 0.25f;
      u[i * cols + j] = s - e0[i * cols + j];
    }
  const double scale = max_abs(m);
  for (const int r : {4, 3}) {
    INFO("r' = " << r);
    const std::vector<float> q0 = random_matrix(cols * r, 21);
    const Step f = fused_step(u, e0, q0, Shape{rows, cols, r});
    const double err = max_abs_diff(f.decoded, m) / scale, left = max_abs(f.e) / scale;
    INFO("relative error " << err << ", memory left " << left);
    if (r == 4) {
      REQUIRE(err < 1e-4);
      REQUIRE(left < 1e-4);
    } else {
      REQUIRE(err > 0.05);
      REQUIRE(left > 0.05);
    }
    std::vector<float> e(m.size());
    for (std::size_t i = 0; i < m.size(); ++i) e[i] = m[i] - f.decoded[i];
    REQUIRE(first_difference(f.e, e) == -1);
  }
}

TEST_CASE("powersgd: large decoded outputs give the same bits at any address on every path",
          "[powersgd]") {
  // Outputs of 2^22 floats and more with whole 16-value rows are written with streaming stores
  // from the first 64-byte boundary of the output (Note [PowerSGD passes]: pass 3's sums do not
  // depend on where its chunks start). Every element is the k-ordered sum, at every offset.
  IsaGuard guard;
  const Shape s{1024, 4096, 3};
  const std::vector<float> p_hat = random_matrix(s.rows * s.r, 22);
  const std::vector<float> q = random_matrix(s.cols * s.r, 23);
  std::vector<float> expected(s.rows * s.cols);
  for (std::int64_t i = 0; i < s.rows; ++i)
    for (std::int64_t j = 0; j < s.cols; ++j) {
      float d = q[j * s.r] * p_hat[i * s.r];
      for (int k = 1; k < s.r; ++k) d = std::fma(q[j * s.r + k], p_hat[i * s.r + k], d);
      expected[i * s.cols + j] = d;
    }
  const std::vector<float> u = random_matrix(s.rows * s.cols, 24);
  const std::vector<float> e0 = random_matrix(s.rows * s.cols, 25);
  for (const char* isa : available_isas()) {
    REQUIRE(cohort::force_isa(isa));
    for (int shift = 0; shift < 4; ++shift) {
      INFO(isa << ", output at an offset of " << shift << " floats");
      std::vector<float> buffer(s.rows * s.cols + 16, -1.0f);
      reconstruct(p_hat.data(), q.data(), s.rows, s.cols, s.r, buffer.data() + shift);
      REQUIRE(first_difference(std::span<const float>(buffer).subspan(shift, expected.size()),
                               expected) == -1);
      REQUIRE(buffer[s.rows * s.cols + shift] == -1.0f);  // nothing written past the end
    }
    INFO(isa << ": the fused step on the large layer");
    const std::vector<float> q0 = random_matrix(s.cols * s.r, 26);
    require_same_bits(fused_step(u, e0, q0, s), step_by_definition(u, e0, q0, s));
  }
}
