// The sums of the reduce and gather plans (Note [Exchange plans] in exchange/exchange.h):
// decoded messages times their weights added into a block-scaled fixed-point sum
// (Note [Deterministic sums]), into float32 sums (comm.sum = float), or, for the majority vote,
// into integer vote counts; finished over the ranks (reduce) or on one rank that added every
// message (gather).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "core/block_sum.h"
#include "core/state.h"
#include "exchange/options.h"

namespace cohort::exchange {

class MessageSum {
 public:
  // d coordinates; at most max_terms messages per round (they fix the exact sum's precision).
  MessageSum(bool majority, SumMode mode, std::int64_t d, std::int64_t max_terms);
  bool majority() const { return majority_; }
  SumMode mode() const { return mode_; }
  // Bits of the exact sum's grid (Note [Deterministic sums]).
  int precision() const { return sum_.precision(); }

  void clear();
  void add(std::span<const float> decoded, double weight);
  // Over the ranks of comm, or locally (comm == nullptr) when this process added every message:
  // g (d floats) <- the sum / total_weight, or the vote's signs (ties +1). Returns false when a
  // message was not finite (or too large for the exact sum).
  bool finish(comm::Communicator* comm, float* g, double total_weight);
  // The exact sum's scales (Note [Checkpoints]).
  void save(StateBundle& b) const;
  void load(const StateBundle& b);

 private:
  bool majority_;
  SumMode mode_;
  std::int64_t d_;
  BlockSum sum_;
  std::vector<float> float_sum_;  // comm.sum = float
  std::vector<std::int32_t> votes_;
  bool decoded_finite_ = true;
};

// Finishes a block sum (Note [Deterministic sums], "The transport"): over the ranks of comm, or
// locally (comm == nullptr) when this process added every term. out[i] = sum_i / divisor.
// Returns false when a term was invalid on this rank.
bool finish_block_sum(BlockSum& sum, comm::Communicator* comm, float* out, double divisor);

}  // namespace cohort::exchange
