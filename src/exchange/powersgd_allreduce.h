// PowerSGD in mode reduce across the ranks (docs/algorithms.md §2, Note [Exchange plans] in
// exchange/exchange.h): P = sum_i w_i M_i Q is all-reduced exactly, orthonormalised on every
// rank, then Q = sum_i w_i M_i^T P_hat / sum_i w_i is all-reduced exactly; g = P_hat Q^T. With
// warm start, the round's Q starts the next round.
//
// This file pair sits in exchange/, not beside compress/powersgd.*: compress/ turns one message
// into bytes and back and depends on no transport, while these are PowerSGD's collectives, the
// one place where its maths (compress/powersgd.h) meets the communicator. The plan around them
// (exchange/powersgd_reduce.h) keeps only what every plan keeps: the clients' messages, their
// bits and their error feedback.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "compress/compressor.h"
#include "core/state.h"

namespace cohort::exchange {

class PowerSgdAllReduce {
 public:
  // The message's layers; rank r and warm start as compressor.rank and compressor.warm_start.
  PowerSgdAllReduce(std::vector<compress::LayerShape> layers, int rank, bool warm_start);

  // What one client puts on the wire: r'(rows + cols) float32 per matrix layer, the other
  // layers as float32.
  std::int64_t wire_bits() const { return wire_bits_; }
  // r' of layer l; 0 for a layer that travels as float32 (rows or cols below 2).
  int layer_rank(std::size_t l) const { return r_[l]; }

  // One message (d floats, layer after layer) and its weight.
  struct Term {
    const float* m;
    double weight;
  };
  // Collective over comm, with this rank's terms: g (d floats) <- P_hat Q^T on matrix layers,
  // the exact weighted mean on the others. The starting Q is the previous round's (warm start)
  // or the layer's shared stream's for (seed, round). Returns false when a term was too large
  // or not finite for the exact sums.
  bool run(comm::Communicator& comm, std::uint64_t seed, std::uint32_t round,
           std::span<const Term> terms, double total_weight, float* g);

  // The warm start's Q (Note [Checkpoints]).
  void save(StateBundle& b) const;
  void load(const StateBundle& b);

 private:
  std::vector<compress::LayerShape> layers_;
  int rank_;
  bool warm_start_;
  std::vector<int> r_;                       // r' per layer; 0: float32
  std::vector<std::int64_t> layer_off_;      // where each layer starts in a message
  std::vector<std::int64_t> p_off_, q_off_;  // where each layer's P (or values) and Q start
  std::int64_t p_total_ = 0, q_total_ = 0;
  std::int64_t wire_bits_ = 0;
  std::vector<std::vector<float>> q_prev_;  // per layer; empty until a round has run
};

}  // namespace cohort::exchange
