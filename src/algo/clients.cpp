#include "algo/clients.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "algo/sampling.h"
#include "core/errors.h"

namespace cohort::algo {

ClientBehaviour::ClientBehaviour(const Config& cfg, Problem& problem, std::uint64_t seed,
                                 ClientStore& store)
    : store_(store), seed_(seed), d_(problem.num_params()) {
  const auto o = attack::attack_options(cfg);
  attack_ = attack::make_attack(o);
  byzantine_ = attack::byzantine_clients(seed, problem.num_clients(), o);
  require_usage(o.name == "none" || !byzantine_.empty(),
                "attack." + o.name + " has no Byzantine clients: set attack.count or "
                "attack.fraction (fraction * num_clients rounds to 0)");
  is_byzantine_.assign(static_cast<std::size_t>(problem.num_clients()), 0);
  for (int c : byzantine_) is_byzantine_[static_cast<std::size_t>(c)] = 1;
  if (attack_->flips_labels()) problem.set_label_flip(byzantine_);
  mimic_variance_ = attack::mimic_by_variance(o);
  beta_ = cfg.get_float("algorithm.client_momentum");
  heavy_ball_ = cfg.get_string("algorithm.momentum_form") == "heavy_ball";
  if (beta_ > 0) momentum_ = store_.declare("momentum", "worker momentum", d_);
  if (attacking()) {
    sum_.resize(d_);
    if (attack_->needs_stddev()) sum_sq_.resize(d_);
    if (attack_->needs_mimic()) mimic_.resize(d_);
  }
}

void ClientBehaviour::check_rounds(long long rounds, int per_round) const {
  if (!attack_->omniscient() || byzantine_.empty()) return;
  const int population = static_cast<int>(is_byzantine_.size());
  const int byz = static_cast<int>(byzantine_.size());
  const int m = std::min(per_round, population);
  // Byzantine clients a round of m samples can hold; craft() runs when at least one is sampled.
  bool possible = false;
  for (int f = std::max(1, m - (population - byz)); f <= std::min(byz, m) && !possible; ++f)
    possible = !attack_->craft_problem(m, f).empty();
  if (!possible) return;
  for (long long t = 0; t < rounds; ++t) {
    const std::vector<int> sampled =
        sample_clients(seed_, static_cast<std::uint32_t>(t), population, per_round);
    int f = 0;
    for (int c : sampled) f += byzantine(c) ? 1 : 0;
    if (f == 0) continue;
    const int n = static_cast<int>(sampled.size());
    const std::string why = attack_->craft_problem(n, f);
    require_usage(why.empty(), fmt::format("attack.name = {}: round {} samples {} clients of "
                                           "which {} are Byzantine: {}",
                                           attack_->name(), t + 1, n, f, why));
  }
}

void ClientBehaviour::begin_round(std::uint32_t round, const std::vector<int>& sampled) {
  round_ = round;
  sampled_ = static_cast<int>(sampled.size());
  sampled_byzantine_ = 0;
  mimic_client_ = -1;
  bool target_sampled = false;
  for (int c : sampled) {
    if (byzantine(c))
      ++sampled_byzantine_;
    else if (mimic_client_ < 0)
      mimic_client_ = c;  // the lowest-id honest client of the round
    if (c == mimic_target_) target_sampled = true;
  }
  // mimic, target variance: the target once chosen (the lowest-id honest client in a round that
  // does not sample it); chosen in the first round with a Byzantine client sampled.
  if (mimic_variance_ && target_sampled) mimic_client_ = mimic_target_;
  choosing_ = mimic_variance_ && mimic_target_ < 0 && sampled_byzantine_ > 0;
  sum_.clear();
  sum_sq_.clear();
  mimic_.clear();
  honest_local_.clear();
  crafted_valid_ = false;
}

void ClientBehaviour::momentum(int c, std::span<float> u) {
  if (beta_ <= 0) return;
  // m_i = 0 before the first participation, in both forms: the first message is (1 - beta) u_i
  // (EMA) or u_i (heavy ball). Starting the EMA at m_i = u_i would give the first gradient the
  // weight beta^(t-1) instead of (1 - beta) beta^(t-1).
  const std::span<float> m = store_.row(momentum_, c);  // zeros at the first participation
  const double a = heavy_ball_ ? 1.0 : 1.0 - beta_;
  for (std::size_t i = 0; i < u.size(); ++i) {
    m[i] = static_cast<float>(beta_ * m[i] + a * u[i]);
    u[i] = m[i];
  }
}

void ClientBehaviour::process(int c, std::span<float> message) {
  momentum(c, message);
  if (!attacking()) return;
  if (byzantine(c)) {
    Rng rng(seed_, round_, static_cast<std::uint32_t>(c), Purpose::kAttack);
    attack_->corrupt(message, rng);
    return;
  }
  sum_.add(message.data());
  if (attack_->needs_stddev())
    for (std::int64_t i = 0; i < d_; ++i)
      sum_sq_.add_at(i, static_cast<double>(message[i]) * message[i]);
  if (c == mimic_client_) mimic_.add(message.data());
  if (attack_->needs_messages() || choosing_) {
    const auto client = static_cast<std::uint32_t>(c);
    const auto* p = reinterpret_cast<const std::uint8_t*>(&client);
    honest_local_.insert(honest_local_.end(), p, p + sizeof client);
    const auto* m = reinterpret_cast<const std::uint8_t*>(message.data());
    honest_local_.insert(honest_local_.end(), m, m + message.size() * sizeof(float));
  }
}

void ClientBehaviour::finish_honest(comm::Communicator& comm) {
  stats_ = attack::HonestStats{};
  if (!attacking()) return;
  comm.allreduce(comm::View{sum_.data(), d_, comm::DType::kExact128}, comm::ReduceOp::kSum);
  const int n = sampled_ - sampled_byzantine_;
  stats_.n = n;
  stats_.mean.resize(static_cast<std::size_t>(d_));
  for (std::int64_t i = 0; i < d_; ++i) stats_.mean[i] = n > 0 ? sum_.value(i) / n : 0.0;
  if (attack_->needs_stddev()) {
    comm.allreduce(comm::View{sum_sq_.data(), d_, comm::DType::kExact128}, comm::ReduceOp::kSum);
    stats_.stddev.resize(static_cast<std::size_t>(d_));
    for (std::int64_t i = 0; i < d_; ++i) {  // unbiased: sum (x - mu)^2 / (n - 1)
      const double ss = sum_sq_.value(i) - n * stats_.mean[i] * stats_.mean[i];
      stats_.stddev[i] = n > 1 ? std::sqrt(std::max(0.0, ss / (n - 1))) : 0.0;
    }
  }
  if (attack_->needs_messages()) stats_.messages = gather_honest(comm).second;
  if (choosing_) {
    auto [ids, messages] = gather_honest(comm);
    if (!ids.empty()) {
      const std::size_t k = attack::mimic_variance_target(messages, ids.size(), d_, seed_);
      mimic_target_ = static_cast<int>(ids[k]);
      const auto* row = messages.data() + k * static_cast<std::size_t>(d_);
      stats_.mimic.assign(row, row + d_);
    }
  } else if (attack_->needs_mimic()) {
    comm.allreduce(comm::View{mimic_.data(), d_, comm::DType::kExact128}, comm::ReduceOp::kSum);
    stats_.mimic.resize(static_cast<std::size_t>(d_));
    mimic_.read(stats_.mimic.data(), 1.0);
  }
}

std::pair<std::vector<std::uint32_t>, std::vector<float>> ClientBehaviour::gather_honest(
    comm::Communicator& comm) {
  const std::size_t rec = sizeof(std::uint32_t) + static_cast<std::size_t>(d_) * sizeof(float);
  std::vector<std::pair<std::uint32_t, const std::uint8_t*>> recs;
  const auto boxes = comm.allgather_bytes(honest_local_);
  for (const auto& box : boxes)
    for (std::size_t at = 0; at + rec <= box.size(); at += rec) {
      std::uint32_t client;
      std::memcpy(&client, box.data() + at, sizeof client);
      recs.emplace_back(client, box.data() + at + sizeof client);
    }
  std::sort(recs.begin(), recs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::uint32_t> ids(recs.size());
  std::vector<float> messages(recs.size() * static_cast<std::size_t>(d_));
  for (std::size_t i = 0; i < recs.size(); ++i) {
    ids[i] = recs[i].first;
    std::memcpy(messages.data() + i * static_cast<std::size_t>(d_), recs[i].second,
                static_cast<std::size_t>(d_) * sizeof(float));
  }
  return {std::move(ids), std::move(messages)};
}

void ClientBehaviour::save(StateBundle& b) const {
  if (mimic_variance_) b.i64["attack/mimic_target"] = {mimic_target_};
}

void ClientBehaviour::load(const StateBundle& b) {
  if (mimic_variance_) mimic_target_ = static_cast<int>(b.get_i64("attack/mimic_target").at(0));
}

void ClientBehaviour::craft(std::span<float> out) {
  if (stats_.n == 0)
    throw std::runtime_error(fmt::format("attack {} in round {}: no honest client was sampled",
                                         attack_->name(), round_ + 1));
  if (!crafted_valid_) {  // the same message for every attacker of the round
    crafted_.resize(out.size());
    attack_->craft(stats_, sampled_, sampled_byzantine_, crafted_);
    crafted_valid_ = true;
  }
  std::copy(crafted_.begin(), crafted_.end(), out.begin());
}

}  // namespace cohort::algo
