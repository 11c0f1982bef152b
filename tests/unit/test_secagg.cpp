// Secure aggregation (Note [Secure aggregation] in privacy/secagg.h): Shamir's threshold, the
// exact unmasked sum under dropouts, the clean abort below t, the uniformity of what the server
// sees of one client, and the fixed-point bounds.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "core/rng.h"
#include "privacy/secagg.h"

using namespace cohort;
using privacy::SecaggOptions;
using privacy::SecureAggregation;
namespace shamir = privacy::shamir;

namespace {

SecaggOptions options(int threshold, double dropout, double range, int max_clients,
                      double late_dropout = 0) {
  SecaggOptions o;
  o.enabled = true;
  o.threshold = threshold;
  o.dropout = dropout;
  o.late_dropout = late_dropout;
  o.clip = range;
  o.range = range;
  o.max_clients = max_clients;
  o.fraction_bits = privacy::auto_fraction_bits(range, max_clients);
  return o;
}

// Client c's update in round r: d values in [-range, range] from a test stream.
std::vector<float> update_of(int c, std::uint32_t r, std::int64_t d, double range) {
  Rng rng(99, r, static_cast<std::uint32_t>(c), Purpose::kTest);
  std::vector<float> u(static_cast<std::size_t>(d));
  for (auto& v : u) v = static_cast<float>(rng.uniform(-range, range));
  return u;
}

struct Outcome {
  bool unmasked = false;
  std::vector<std::int32_t> sum, plain;  // the protocol's and the survivors' quantized sum
  int survivors = 0;
};

// One round on one process: every sampled client submits; `plain` sums the quantized updates of
// the clients that did not drop out, computed here from the definition round(x 2^f).
Outcome run_round(SecureAggregation& sa, const SecaggOptions& o, std::uint32_t r,
                  const std::vector<int>& sampled, std::int64_t d) {
  sa.begin_round(r, sampled, 0, 1 << 30);
  Outcome out;
  out.plain.assign(static_cast<std::size_t>(d), 0);
  const double scale = std::ldexp(1.0, o.fraction_bits);
  for (int c : sampled) {
    const auto u = update_of(c, r, d, o.range);
    sa.submit(c, u);
    if (sa.dropped(c)) continue;
    ++out.survivors;
    for (std::int64_t j = 0; j < d; ++j)
      out.plain[static_cast<std::size_t>(j)] += static_cast<std::int32_t>(
          std::llround(static_cast<double>(u[static_cast<std::size_t>(j)]) * scale));
  }
  out.unmasked = sa.finish();
  out.sum.assign(sa.sum().begin(), sa.sum().end());
  return out;
}

// Pearson's chi-square statistic of the bytes of v over 256 bins.
double chi_square_bytes(const std::vector<std::uint32_t>& v) {
  std::vector<double> bins(256, 0.0);
  for (std::uint32_t w : v)
    for (int b = 0; b < 4; ++b) bins[(w >> (8 * b)) & 0xFF] += 1;
  const double expected = 4.0 * static_cast<double>(v.size()) / 256.0;
  double x2 = 0;
  for (double o : bins) x2 += (o - expected) * (o - expected) / expected;
  return x2;
}

// The chi-square quantile at probability 1 - alpha for k degrees of freedom by Wilson-Hilferty
// (relative error below 1e-3 at k = 255), with z the standard normal quantile.
double chi_square_quantile(double k, double z) {
  const double a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

}  // namespace

TEST_CASE("secagg: Shamir reconstructs from any t of n shares and not from t - 1", "[secagg]") {
  shamir::Secret secret;
  for (std::size_t i = 0; i < secret.size(); ++i)
    secret[i] = static_cast<std::uint8_t>(37 * i + 11);
  secret[31] = 0xFF;  // the last (4-byte) chunk's top bits
  const int n = 7, t = 4;
  std::vector<std::uint64_t> xs = {1, 2, 5, 9, 14, 200, 1000000};
  Rng rng(5, 0, 0, Purpose::kTest);
  const auto shares = shamir::split(secret, xs, t, rng);
  REQUIRE(shares.size() == static_cast<std::size_t>(n));
  int right = 0, wrong = 0;
  for (int mask = 1; mask < (1 << n); ++mask) {
    std::vector<std::uint64_t> px;
    std::vector<shamir::Share> ps;
    for (int i = 0; i < n; ++i)
      if (mask & (1 << i)) {
        px.push_back(xs[static_cast<std::size_t>(i)]);
        ps.push_back(shares[static_cast<std::size_t>(i)]);
      }
    const bool ok = shamir::combine_points(px, ps) == secret;
    if (static_cast<int>(px.size()) >= t) {
      REQUIRE(ok);  // every subset of at least t shares
      ++right;
    } else if (static_cast<int>(px.size()) == t - 1) {
      REQUIRE_FALSE(ok);  // t - 1 shares interpolate to something else
      ++wrong;
    }
  }
  REQUIRE(right == 35 + 21 + 7 + 1);  // C(7,4) + C(7,5) + C(7,6) + C(7,7)
  REQUIRE(wrong == 35);               // C(7,3)
  // Every share is a field element.
  for (const auto& s : shares)
    for (std::uint64_t v : s) REQUIRE(v < shamir::kPrime);
}

TEST_CASE("secagg: the unmasked sum equals the survivors' quantized sum bit for bit", "[secagg]") {
  auto comm = comm::make_self_communicator();
  const std::int64_t d = 203;
  const std::vector<int> sampled = {0, 3, 4, 8, 11, 12, 17, 20, 21, 29, 30, 31};
  const int n = static_cast<int>(sampled.size());
  int rounds_with_drops = 0, unmasked = 0, most_dropped = 0, late_unmasked = 0;
  // (dropout before delivery, dropout after it): a client that leaves late is in the sum, but
  // its shares are missing from the unmasking.
  const std::pair<double, double> rates[] = {{0.0, 0.0}, {0.2, 0.0}, {0.45, 0.0}, {0.0, 0.3},
                                             {0.25, 0.3}};
  for (const auto& [dropout, late] : rates) {
    const SecaggOptions o = options(5, dropout, 0.75, n, late);
    SecureAggregation sa(o, *comm, 1234, d);
    for (std::uint32_t r = 0; r < 8; ++r) {
      INFO("dropout " << dropout << " late " << late << " round " << r);
      const Outcome out = run_round(sa, o, r, sampled, d);
      const auto& rep = sa.report();
      REQUIRE(rep.survivors == out.survivors);
      REQUIRE(rep.responders <= rep.survivors);
      REQUIRE(rep.threshold == 5);
      if (dropout == 0) REQUIRE(out.survivors == n);
      if (late == 0) REQUIRE(rep.responders == rep.survivors);
      if (out.survivors < n) ++rounds_with_drops;
      REQUIRE(out.unmasked == (rep.responders >= 5));
      if (!out.unmasked) continue;
      ++unmasked;
      if (rep.responders < rep.survivors) ++late_unmasked;
      most_dropped = std::max(most_dropped, n - out.survivors);
      REQUIRE(out.sum == out.plain);
    }
  }
  // The patterns covered: no dropout, a few, many (down to t survivors or close), and clients
  // leaving after delivery.
  REQUIRE(rounds_with_drops >= 8);
  REQUIRE(unmasked >= 24);
  REQUIRE(most_dropped >= 5);
  REQUIRE(late_unmasked >= 4);
}

TEST_CASE("secagg: a majority threshold, the pairwise masks cancel and the bytes add up",
          "[secagg]") {
  auto comm = comm::make_self_communicator();
  const std::int64_t d = 64;
  const std::vector<int> sampled = {2, 5, 6, 9, 13};
  const SecaggOptions o = options(0, 0.0, 1.0, 5);
  SecureAggregation sa(o, *comm, 7, d);
  const Outcome out = run_round(sa, o, 3, sampled, d);
  REQUIRE(out.unmasked);
  REQUIRE(sa.report().threshold == 3);  // floor(5 / 2) + 1
  REQUIRE(out.sum == out.plain);
  // Per client: keys 64, 4 ciphertexts of 108, the masked vector 4 d, 5 responses of 44.
  const auto& r = sa.report();
  for (std::int64_t b : r.client_sent) REQUIRE(b == 64 + 4 * 108 + 4 * d + 5 * 44);
  for (std::int64_t b : r.client_received) REQUIRE(b == 4 * (68 + 108) + 4 * 5);
  REQUIRE(r.server_received == Approx(5.0 * (64 + 4 * 108 + 4 * d + 5 * 44)));
  REQUIRE(r.server_sent == Approx(5.0 * (4 * (68 + 108) + 4 * 5)));
  // The same round again gives the same transcript; another round another one.
  const std::uint64_t first = r.transcript;
  run_round(sa, o, 3, sampled, d);
  REQUIRE(sa.report().transcript == first);
  run_round(sa, o, 4, sampled, d);
  REQUIRE(sa.report().transcript != first);
}

TEST_CASE("secagg: fewer than t survivors abort cleanly", "[secagg]") {
  auto comm = comm::make_self_communicator();
  const std::int64_t d = 16;
  const std::vector<int> sampled = {1, 2, 3, 4, 5, 6, 7, 8};
  // t = n: a single dropout aborts the round.
  const SecaggOptions o = options(8, 0.3, 1.0, 8);
  SecureAggregation sa(o, *comm, 11, d);
  int aborted = 0, completed = 0;
  for (std::uint32_t r = 0; r < 10; ++r) {
    const Outcome out = run_round(sa, o, r, sampled, d);
    const auto& rep = sa.report();
    REQUIRE(rep.aborted == (out.survivors < 8));
    REQUIRE(out.unmasked == !rep.aborted);
    if (rep.aborted) {
      ++aborted;
      // Nothing was unmasked, and no client answered step 4: a client sent its keys, shares
      // and, if it arrived, its masked vector; it heard the keys, its shares and, if its vector
      // arrived, the survivor list.
      REQUIRE(std::all_of(out.sum.begin(), out.sum.end(), [](std::int32_t v) { return v == 0; }));
      for (std::size_t i = 0; i < sampled.size(); ++i) {
        const bool in = !sa.dropped(sampled[i]);
        REQUIRE(rep.client_sent[i] == 64 + 7 * 108 + (in ? 4 * d : 0));
        REQUIRE(rep.client_received[i] == 7 * (68 + 108) + (in ? 4 * out.survivors : 0));
      }
    } else {
      ++completed;
      REQUIRE(out.sum == out.plain);
    }
  }
  REQUIRE(aborted >= 1);
  REQUIRE(completed >= 1);
}

TEST_CASE("secagg: a masked vector's bytes are uniform, the quantized input's are not",
          "[secagg]") {
  auto comm = comm::make_self_communicator();
  const std::int64_t d = 4096;  // 16384 bytes, 64 expected per bin
  const std::vector<int> sampled = {0, 1, 2, 3, 4, 5};
  const SecaggOptions o = options(3, 0.0, 0.5, 6);
  SecureAggregation sa(o, *comm, 2024, d);
  sa.begin_round(0, sampled, 0, 1 << 30);
  const auto u = update_of(3, 0, d, 0.5);
  sa.submit(3, u);
  const std::vector<std::uint32_t> masked(sa.last_masked().begin(), sa.last_masked().end());
  const std::vector<std::uint32_t> plain(sa.last_quantized().begin(), sa.last_quantized().end());
  // 255 degrees of freedom; rejecting at probability 0.999 (z = 3.0902).
  const double limit = chi_square_quantile(255, 3.0902);
  REQUIRE(limit == Approx(330.5).margin(1.0));
  const double x2_masked = chi_square_bytes(masked);
  const double x2_plain = chi_square_bytes(plain);
  INFO("chi-square masked " << x2_masked << ", quantized " << x2_plain << ", limit " << limit);
  REQUIRE(x2_masked < limit);
  REQUIRE(x2_plain > limit);
  // The quantized input is what the definition says.
  const double scale = std::ldexp(1.0, o.fraction_bits);
  for (std::int64_t j = 0; j < d; ++j)
    REQUIRE(static_cast<std::int32_t>(plain[static_cast<std::size_t>(j)]) ==
            std::llround(static_cast<double>(u[static_cast<std::size_t>(j)]) * scale));
}

TEST_CASE("secagg: the fixed point cannot wrap and decodes within n 2^-(f+1)", "[secagg]") {
  // The largest f with n R 2^f < 2^31.
  REQUIRE(privacy::auto_fraction_bits(1.0, 10) == 27);    // 10 2^27 < 2^31 <= 10 2^28
  REQUIRE(privacy::auto_fraction_bits(0.5, 1000) == 22);  // 500 2^22 < 2^31
  REQUIRE(privacy::auto_fraction_bits(1.0, 1) == 30);
  REQUIRE(privacy::auto_fraction_bits(3.0, 1 << 30) == 0);  // no room for one fraction bit
  for (const int n : {1, 3, 100, 1000})
    for (const double range : {0.1, 1.0, 9.0}) {
      const int f = privacy::auto_fraction_bits(range, n);
      REQUIRE(n * range * std::ldexp(1.0, f) < 0x1.0p31);
      if (f < 30) REQUIRE(n * range * std::ldexp(1.0, f + 1) >= 0x1.0p31);
    }
  auto comm = comm::make_self_communicator();
  const std::int64_t d = 8;
  const std::vector<int> sampled = {0, 1, 2, 3, 4, 5, 6};
  const int n = 7;
  const SecaggOptions o = options(4, 0.0, 2.0, n);
  SecureAggregation sa(o, *comm, 3, d);
  // Every client at the range's ends, and beyond it (clamped): the sum reaches n floor(R 2^f)
  // in size without wrapping.
  const auto bound =
      static_cast<std::int64_t>(std::floor(o.range * std::ldexp(1.0, o.fraction_bits)));
  sa.begin_round(0, sampled, 0, 1 << 30);
  std::vector<float> decoded(static_cast<std::size_t>(d));
  std::vector<double> exact(static_cast<std::size_t>(d), 0.0);
  for (int c : sampled) {
    std::vector<float> u = {2.0f, -2.0f, 1e30f, -INFINITY, NAN, 0.3f, -1.7f, 1.2345678f};
    u[5] = static_cast<float>(0.3 + 0.01 * c);
    sa.submit(c, u);
    for (std::int64_t j = 5; j < d; ++j)
      exact[static_cast<std::size_t>(j)] += u[static_cast<std::size_t>(j)];
  }
  REQUIRE(sa.finish());
  const auto sum = sa.sum();
  REQUIRE(sum[0] == n * bound);
  REQUIRE(sum[1] == -n * bound);
  REQUIRE(sum[2] == n * bound);
  REQUIRE(sum[3] == -n * bound);
  REQUIRE(sum[4] == 0);
  REQUIRE(static_cast<double>(n * bound) < 0x1.0p31);
  sa.decode(decoded.data(), 1.0);
  const double tolerance = n * std::ldexp(1.0, -(o.fraction_bits + 1));
  for (std::int64_t j = 5; j < d; ++j)
    REQUIRE(std::fabs(decoded[static_cast<std::size_t>(j)] - exact[static_cast<std::size_t>(j)]) <=
            tolerance + 1e-6 * std::fabs(exact[static_cast<std::size_t>(j)]));
}
