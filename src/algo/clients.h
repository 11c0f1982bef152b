// What happens to a client's message between local work and the exchange: worker momentum
// (docs/algorithms.md §1) and, for Byzantine clients, the attack (§4).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "algo/problem.h"
#include "attack/attack.h"
#include "comm/communicator.h"
#include "core/client_store.h"
#include "core/config.h"
#include "core/exact_sum.h"
#include "core/state.h"

namespace cohort::algo {

class ClientBehaviour {
 public:
  // Chooses the Byzantine set and, for labelflip, tells the problem to flip their labels.
  // Worker momentum is declared in `store` as slot "momentum" (Note [Client store]).
  ClientBehaviour(const Config& cfg, Problem& problem, std::uint64_t seed, ClientStore& store);

  const std::vector<int>& byzantine_set() const { return byzantine_; }
  // UsageError when an omniscient attack could not craft its message in one of the run's rounds
  // (Attack::craft_problem): the rounds' samples are known from the seed, so this is decided
  // before training. Cheap unless some sample could be a problem; then it replays the sampling.
  void check_rounds(long long rounds, int per_round) const;
  bool byzantine(int c) const { return is_byzantine_[static_cast<std::size_t>(c)] != 0; }
  bool attacking() const { return attack_->name() != "none"; }
  // Whether client c's message reaches the exchange this round (dropout attackers send none).
  bool sends(int c) const { return !(byzantine(c) && attack_->drops()); }
  // Whether client c runs local work (omniscient attackers only craft their message).
  bool trains(int c) const { return sends(c) && !(byzantine(c) && attack_->omniscient()); }

  void begin_round(std::uint32_t round, const std::vector<int>& sampled);
  // Worker momentum, then the attack for a Byzantine client; an honest message feeds the round's
  // statistics. message is updated in place.
  void process(int c, std::span<float> message);
  // Collective: all-reduces the honest statistics (exact sums). Call once per round on every
  // rank after all process() calls.
  void finish_honest(comm::Communicator& comm);
  // Omniscient attacks: the message a sampled Byzantine client sends (after finish_honest).
  bool crafts() const { return attack_->omniscient(); }
  void craft(std::span<float> out);
  // The honest messages' mean this round (after finish_honest; empty without an attack).
  const std::vector<double>& honest_mean() const { return stats_.mean; }
  int sampled_byzantine() const { return sampled_byzantine_; }
  // mimic with target variance: the chosen honest client (-1 before the attack's first round),
  // carried in checkpoints ("attack/mimic_target"; the same on every rank).
  bool picks_mimic_target() const { return mimic_variance_; }
  int mimic_target() const { return mimic_target_; }
  void save(StateBundle& b) const;
  void load(const StateBundle& b);

 private:
  void momentum(int c, std::span<float> message);
  // Every rank gets the round's honest messages in client order: (ids, ids.size() x d floats).
  std::pair<std::vector<std::uint32_t>, std::vector<float>> gather_honest(comm::Communicator& comm);

  std::unique_ptr<attack::Attack> attack_;
  std::vector<int> byzantine_;
  std::vector<char> is_byzantine_;
  double beta_ = 0;
  bool heavy_ball_ = false;
  ClientStore& store_;
  ClientStore::Slot momentum_ = ClientStore::kNone;
  std::uint64_t seed_;
  std::uint32_t round_ = 0;
  std::int64_t d_;
  int sampled_ = 0, sampled_byzantine_ = 0, mimic_client_ = -1;
  bool mimic_variance_ = false;  // attack.target = variance
  bool choosing_ = false;        // this round picks the mimic target (its honest messages kept)
  int mimic_target_ = -1;
  ExactAccumulator sum_, sum_sq_, mimic_;
  // minmax / minsum, and the round that picks mimic's target: this rank's honest messages of the
  // round, [client u32][d floats] each.
  std::vector<std::uint8_t> honest_local_;
  // The omniscient attackers' message of the round, crafted once (every one sends the same).
  std::vector<float> crafted_;
  bool crafted_valid_ = false;
  attack::HonestStats stats_;
};

}  // namespace cohort::algo
