// Attacks (docs/algorithms.md §4) and worker momentum (§1) on fixed honest sets.
#include <algorithm>
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "algo/clients.h"
#include "algo/problem.h"
#include "algo/run_schema.h"
#include "attack/attack.h"
#include "comm/communicator.h"
#include "core/config.h"

using namespace cohort;

TEST_CASE("attack: ALIE's z: auto and the normal quantile", "[attack]") {
  // n = 25, f = 5: s = floor(13.5) - 5 = 8, Phi^-1((20 - 8)/20) = Phi^-1(0.6) = 0.253347
  REQUIRE(attack::alie_z_auto(25, 5) == Approx(0.253347).margin(1e-6));
  REQUIRE(attack::normal_quantile(0.975) == Approx(1.959964).margin(1e-6));
  REQUIRE(attack::normal_quantile(0.5) == Approx(0.0).margin(1e-12));
  REQUIRE_THROWS(attack::alie_z_auto(4, 3));  // (n-f-s)/(n-f) = 0: undefined
}

TEST_CASE("attack: the Byzantine set is fixed by the seed", "[attack]") {
  attack::AttackOptions o;
  o.name = "signflip";
  o.count = 3;
  const auto a = attack::byzantine_clients(7, 20, o), b = attack::byzantine_clients(7, 20, o);
  REQUIRE(a == b);
  REQUIRE(a.size() == 3);
  REQUIRE(std::is_sorted(a.begin(), a.end()));
  REQUIRE(a != attack::byzantine_clients(8, 20, o));
  o.count = 0;
  o.fraction = 0.2;
  REQUIRE(attack::byzantine_clients(7, 25, o).size() == 5);
  o.name = "none";
  REQUIRE(attack::byzantine_clients(7, 25, o).empty());
}

TEST_CASE("attack: each attack's message on a fixed honest set", "[attack]") {
  // Honest messages (2-D): (1, 2), (3, 2), (2, 5): mean (2, 3), unbiased std (1, sqrt(3)).
  attack::HonestStats h;
  h.n = 3;
  h.mean = {2.0, 3.0};
  h.stddev = {1.0, std::sqrt(3.0)};
  h.mimic = {1.0f, 2.0f};
  std::vector<float> out(2);
  attack::AttackOptions o;
  Rng rng(1, 0, 0, Purpose::kTest);

  o.name = "ipm";
  o.eps = 0.5;
  attack::make_attack(o)->craft(h, 5, 2, out);
  REQUIRE(out == std::vector<float>{-1.0f, -1.5f});

  o.name = "alie";
  o.z = "1.5";
  attack::make_attack(o)->craft(h, 5, 2, out);
  REQUIRE(out[0] == Approx(0.5));
  REQUIRE(out[1] == Approx(3.0 - 1.5 * std::sqrt(3.0)));

  o.name = "mimic";
  attack::make_attack(o)->craft(h, 5, 2, out);
  REQUIRE(out == std::vector<float>{1.0f, 2.0f});

  // minmax / minsum (tests/robust_reference.py, by the papers' bisection): the pairwise squared
  // distances are 4, 10, 10, so D = 10 and S = max(14, 14, 20) = 20; with a = (2, 2, 4),
  // b = <g - mu, sigma> = (-1-sqrt3, 1-sqrt3, 2 sqrt3), c = 4, minmax's binding client is the
  // third: 4g^2 + 4 sqrt3 g - 6 = 0, g = 3/2 - sqrt3/2; minsum: 12 g^2 - 12 = 0, g = 1.
  h.messages = {1, 2, 3, 2, 2, 5};
  REQUIRE(attack::minmax_gamma(h, false) == Approx(1.5 - std::sqrt(3.0) / 2).epsilon(1e-12));
  REQUIRE(attack::minmax_gamma(h, true) == Approx(1.0).epsilon(1e-12));
  o.name = "minmax";
  REQUIRE(attack::make_attack(o)->needs_messages());
  attack::make_attack(o)->craft(h, 5, 2, out);
  REQUIRE(out[0] == Approx(1.366025403785443).epsilon(1e-7));
  REQUIRE(out[1] == Approx(1.9019237886484235).epsilon(1e-7));
  o.name = "minsum";
  attack::make_attack(o)->craft(h, 5, 2, out);
  REQUIRE(out[0] == Approx(1.0).epsilon(1e-7));
  REQUIRE(out[1] == Approx(3.0 - std::sqrt(3.0)).epsilon(1e-7));
  // Identical honest messages: sigma = 0, the attackers send mu.
  attack::HonestStats same;
  same.n = 2;
  same.mean = {1.0, -1.0};
  same.stddev = {0.0, 0.0};
  same.messages = {1, -1, 1, -1};
  REQUIRE(attack::minmax_gamma(same, false) == 0.0);
  o.name = "minmax";
  attack::make_attack(o)->craft(same, 4, 2, out);
  REQUIRE(out == std::vector<float>{1.0f, -1.0f});

  std::vector<float> own = {1.5f, -2.0f};
  o.name = "signflip";
  o.scale = 2.0;
  attack::make_attack(o)->corrupt(own, rng);
  REQUIRE(own == std::vector<float>{-3.0f, 4.0f});
  o.name = "zero";
  attack::make_attack(o)->corrupt(own, rng);
  REQUIRE(own == std::vector<float>{0.0f, 0.0f});
  o.name = "nonfinite";
  o.value = "inf";
  attack::make_attack(o)->corrupt(own, rng);
  REQUIRE(std::isinf(own[0]));
  o.value = "nan";
  attack::make_attack(o)->corrupt(own, rng);
  REQUIRE(std::isnan(own[1]));
  o.name = "dropout";
  REQUIRE(attack::make_attack(o)->drops());
  o.name = "labelflip";
  REQUIRE(attack::make_attack(o)->flips_labels());

  // gaussian: N(0, sigma^2) per coordinate; sample std of 20000 draws within 5 standard errors.
  o.name = "gaussian";
  o.sigma = 3.0;
  std::vector<float> big(20000);
  attack::make_attack(o)->corrupt(big, rng);
  double s = 0, s2 = 0;
  for (float v : big) {
    s += v;
    s2 += double(v) * v;
  }
  const double n = big.size(), mean = s / n, var = s2 / n - mean * mean;
  REQUIRE(std::fabs(mean) < 5 * 3.0 / std::sqrt(n));
  REQUIRE(std::fabs(var - 9.0) < 5 * 9.0 * std::sqrt(2.0 / n));
}

namespace {

// Two quadratic clients, so the behaviour has a problem to attach to.
struct Setup {
  Config cfg;
  std::unique_ptr<algo::Problem> problem;
  ClientStore store{0, 4};  // one rank owns all four clients
  Setup(const std::vector<std::string>& overrides)
      : cfg(Config::from_text("data: {name: quadratic, dim: 2}\nclients: {num_clients: 4}\n"
                              "output: {progress_every: 0}\n",
                              overrides, algo::run_schema())),
        problem(algo::make_problem(cfg)) {}
};

}  // namespace

TEST_CASE("attack: worker momentum in EMA and heavy-ball form, m = 0 before the first message",
          "[attack]") {
  for (const std::string form : {"ema", "heavy_ball"}) {
    Setup s({"algorithm.client_momentum=0.5", "algorithm.momentum_form=" + form});
    algo::ClientBehaviour b(s.cfg, *s.problem, 0, s.store);
    std::vector<float> u1 = {2, 4}, u2 = {4, 0}, u3 = {0, 8};
    b.begin_round(0, {0});
    b.process(0, u1);
    b.begin_round(5, {0});  // rounds away: the memory stays
    b.process(0, u2);
    b.begin_round(6, {0});
    b.process(0, u3);
    if (form == "ema") {  // m1 = 0.5 (2,4) = (1,2); m2 = 0.5 (1,2) + 0.5 (4,0) = (2.5,1);
                          // m3 = 0.5 (2.5,1) + 0.5 (0,8) = (1.25,4.5)
      REQUIRE(u1 == std::vector<float>{1, 2});
      REQUIRE(u2 == std::vector<float>{2.5f, 1});
      REQUIRE(u3 == std::vector<float>{1.25f, 4.5f});
    } else {  // m1 = (2,4); m2 = 0.5 (2,4) + (4,0) = (5,2); m3 = 0.5 (5,2) + (0,8) = (2.5,9)
      REQUIRE(u1 == std::vector<float>{2, 4});
      REQUIRE(u2 == std::vector<float>{5, 2});
      REQUIRE(u3 == std::vector<float>{2.5f, 9});
    }
  }
  // beta = 0.99: after 68 participations of u = 1 the EMA is 1 - 0.99^68 (about 0.495), not 1.
  Setup s({"algorithm.client_momentum=0.99"});
  algo::ClientBehaviour b(s.cfg, *s.problem, 0, s.store);
  std::vector<float> u(1);
  for (int t = 0; t < 68; ++t) {
    b.begin_round(static_cast<std::uint32_t>(t), {0});
    u = {1.0f};
    b.process(0, u);
  }
  REQUIRE(u[0] == Approx(1 - std::pow(0.99, 68)).epsilon(1e-5));
}

TEST_CASE("attack: omniscient attackers see the honest statistics of the round", "[attack]") {
  Setup s({"attack.name=alie", "attack.count=1", "attack.z=1"});
  algo::ClientBehaviour b(s.cfg, *s.problem, 0, s.store);
  const int byz = b.byzantine_set().at(0);
  std::vector<int> sampled = {0, 1, 2, 3};
  b.begin_round(0, sampled);
  std::vector<std::vector<float>> honest = {{1, 2}, {3, 2}, {2, 5}};
  int k = 0;
  for (int c : sampled)
    if (c != byz) b.process(c, honest[static_cast<std::size_t>(k++)]);
  auto comm = comm::make_self_communicator();
  b.finish_honest(*comm);
  std::vector<float> out(2);
  b.craft(out);
  REQUIRE(out[0] == Approx(2.0 - 1.0));                // mu - z sigma, sigma = 1
  REQUIRE(out[1] == Approx(3.0 - std::sqrt(3.0)));     // sigma = sqrt(3)
  REQUIRE(b.honest_mean() == std::vector<double>{2.0, 3.0});
  REQUIRE(b.sampled_byzantine() == 1);
}

TEST_CASE("attack: labelflip needs class labels", "[attack]") {
  Setup s({"attack.name=labelflip", "attack.count=1"});
  REQUIRE_THROWS_WITH(algo::ClientBehaviour(s.cfg, *s.problem, 0, s.store),
                      Catch::Contains("labelflip needs a classification problem"));
}

TEST_CASE("attack: mimic with target variance copies the client along the honest spread's "
          "leading direction, and keeps it", "[attack]") {
  Setup s({"attack.name=mimic", "attack.count=1", "attack.target=variance"});
  algo::ClientBehaviour b(s.cfg, *s.problem, 7, s.store);
  const int byz = b.byzantine_set().at(0);
  std::vector<int> honest;
  for (int c = 0; c < 4; ++c)
    if (c != byz) honest.push_back(c);
  // Honest messages in id order: the lowest-id one sits at the centre, the other two spread
  // along +-(4, 1), so the choice is one of the two outer ones whatever z0's sign.
  const std::vector<std::vector<float>> g = {{0.1f, 0.0f}, {4.0f, 1.0f}, {-4.0f, -1.0f}};
  // The documented rule by hand: mu, z0 from (seed, 1, kGlobalClient, kAttack), S = sum of the
  // centred outer products, v = S z0, target = argmax <g_i, v>.
  Rng rng(7, 1, kGlobalClient, Purpose::kAttack);
  const double z0[2] = {rng.normal(), rng.normal()};
  const double mu[2] = {(0.1 + 4 - 4) / 3.0, 0.0};
  double S[2][2] = {{0, 0}, {0, 0}};
  for (const auto& m : g)
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) S[r][c] += (m[r] - mu[r]) * (m[c] - mu[c]);
  const double v[2] = {S[0][0] * z0[0] + S[0][1] * z0[1], S[1][0] * z0[0] + S[1][1] * z0[1]};
  std::size_t want = 0;
  for (std::size_t i = 1; i < 3; ++i)
    if (g[i][0] * v[0] + g[i][1] * v[1] > g[want][0] * v[0] + g[want][1] * v[1]) want = i;
  REQUIRE(want != 0);
  std::vector<float> flat;
  for (const auto& m : g) flat.insert(flat.end(), m.begin(), m.end());
  REQUIRE(attack::mimic_variance_target(flat, 3, 2, 7) == want);

  auto comm = comm::make_self_communicator();
  const auto round = [&](std::uint32_t t, const std::vector<int>& sampled,
                         const std::vector<std::vector<float>>& msgs) {
    b.begin_round(t, sampled);
    std::size_t k = 0;
    for (int c : sampled)
      if (c != byz) {
        std::vector<float> m = msgs[k++];
        b.process(c, m);
      }
    b.finish_honest(*comm);
    std::vector<float> out(2);
    b.craft(out);
    return out;
  };
  REQUIRE(b.mimic_target() == -1);
  REQUIRE(round(0, {0, 1, 2, 3}, g) == g[want]);
  REQUIRE(b.mimic_target() == honest[want]);
  // Later rounds copy the same client's new message, not the lowest-id one's.
  const std::vector<std::vector<float>> g2 = {{9, 9}, {1, 2}, {3, 4}};
  REQUIRE(round(1, {0, 1, 2, 3}, g2) == g2[want]);
  // A round without the target copies the round's lowest-id honest client.
  std::vector<int> without = {byz};
  for (int c : honest)
    if (c != honest[want]) without.push_back(c);
  std::sort(without.begin(), without.end());
  REQUIRE(round(2, without, {{5, 6}, {7, 8}}) == std::vector<float>{5, 6});
  // The target survives a checkpoint.
  StateBundle saved;
  b.save(saved);
  ClientStore store2{0, 4};
  algo::ClientBehaviour resumed(s.cfg, *s.problem, 7, store2);
  resumed.load(saved);
  REQUIRE(resumed.mimic_target() == honest[want]);
}
