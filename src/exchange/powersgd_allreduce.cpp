#include "exchange/powersgd_allreduce.h"

#include <string>
#include <utility>

#include <fmt/format.h>

#include "compress/powersgd.h"
#include "core/exact_sum.h"

namespace cohort::exchange {

namespace ps = compress::powersgd;

PowerSgdAllReduce::PowerSgdAllReduce(std::vector<compress::LayerShape> layers, int rank,
                                     bool warm_start)
    : layers_(std::move(layers)), rank_(rank), warm_start_(warm_start), r_(layers_.size(), 0),
      layer_off_(layers_.size()), p_off_(layers_.size()), q_off_(layers_.size()),
      q_prev_(layers_.size()) {
  std::int64_t offset = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& L = layers_[l];
    layer_off_[l] = offset;
    offset += L.size();
    p_off_[l] = p_total_;
    q_off_[l] = q_total_;
    if (ps::compressible(L.rows, L.cols)) {
      r_[l] = ps::effective_rank(L.rows, L.cols, rank_);
      p_total_ += L.rows * r_[l];
      q_total_ += L.cols * r_[l];
    } else {
      p_total_ += L.size();
    }
    wire_bits_ += ps::compressible(L.rows, L.cols)
                      ? 32LL * ps::effective_rank(L.rows, L.cols, rank_) * (L.rows + L.cols)
                      : 32LL * L.size();
  }
}

bool PowerSgdAllReduce::run(comm::Communicator& comm, std::uint64_t seed, std::uint32_t round,
                            std::span<const Term> terms, double total_weight, float* g) {
  // Phase 1: P = sum_i w_i M_i Q0 for matrix layers (the power step on the weighted sum; only
  // its direction matters, and with unit weights it is docs/algorithms.md's sum of P_i); the other
  // layers' weighted sums, exactly.
  std::vector<std::vector<float>> q0(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (r_[l] == 0) continue;
    const auto& L = layers_[l];
    if (warm_start_ && !q_prev_[l].empty()) {
      q0[l] = q_prev_[l];
    } else {
      q0[l].resize(static_cast<std::size_t>(L.cols * r_[l]));
      ps::initial_q(compress::MessageContext{seed, round, 0}, L, r_[l], q0[l].data());
    }
  }
  ExactAccumulator p_acc(p_total_), q_acc(q_total_);
  std::vector<float> scratch;
  for (const Term& t : terms) {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const auto& L = layers_[l];
      const float* m = t.m + layer_off_[l];
      if (r_[l] == 0) {
        for (std::int64_t i = 0; i < L.size(); ++i) p_acc.add_at(p_off_[l] + i, t.weight * m[i]);
        continue;
      }
      scratch.resize(static_cast<std::size_t>(L.rows * r_[l]));
      ps::multiply_p(m, q0[l].data(), L.rows, L.cols, r_[l], scratch.data());
      for (std::int64_t i = 0; i < L.rows * r_[l]; ++i)
        p_acc.add_at(p_off_[l] + i, t.weight * scratch[i]);
    }
  }
  comm.allreduce(comm::View{p_acc.data(), p_total_, comm::DType::kExact128}, comm::ReduceOp::kSum);
  std::vector<float> p_all(static_cast<std::size_t>(p_total_));
  p_acc.read(p_all.data(), 1.0);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& L = layers_[l];
    if (r_[l] == 0) {  // uncompressed layer: the weighted mean
      for (std::int64_t i = 0; i < L.size(); ++i)
        g[layer_off_[l] + i] = static_cast<float>(p_acc.value(p_off_[l] + i) / total_weight);
    } else {
      ps::orthonormalize(p_all.data() + p_off_[l], L.rows, r_[l]);
    }
  }
  // Phase 2: Q = sum_i w_i M_i^T P_hat / sum_i w_i.
  for (const Term& t : terms) {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      if (r_[l] == 0) continue;
      const auto& L = layers_[l];
      scratch.resize(static_cast<std::size_t>(L.cols * r_[l]));
      ps::multiply_q(t.m + layer_off_[l], p_all.data() + p_off_[l], L.rows, L.cols, r_[l],
                     scratch.data());
      for (std::int64_t i = 0; i < L.cols * r_[l]; ++i)
        q_acc.add_at(q_off_[l] + i, t.weight * scratch[i]);
    }
  }
  comm.allreduce(comm::View{q_acc.data(), q_total_, comm::DType::kExact128}, comm::ReduceOp::kSum);
  std::vector<float> q_all(static_cast<std::size_t>(q_total_));
  q_acc.read(q_all.data(), total_weight);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (r_[l] == 0) continue;
    const auto& L = layers_[l];
    ps::reconstruct(p_all.data() + p_off_[l], q_all.data() + q_off_[l], L.rows, L.cols, r_[l],
                    g + layer_off_[l]);
    if (warm_start_)
      q_prev_[l].assign(q_all.begin() + q_off_[l], q_all.begin() + q_off_[l] + L.cols * r_[l]);
  }
  return p_acc.valid() && q_acc.valid();
}

void PowerSgdAllReduce::save(StateBundle& b) const {
  for (std::size_t l = 0; l < q_prev_.size(); ++l)
    if (!q_prev_[l].empty()) b.f32[fmt::format("exchange/q_prev/{}", l)] = q_prev_[l];
}

void PowerSgdAllReduce::load(const StateBundle& b) {
  for (std::size_t l = 0; l < q_prev_.size(); ++l) {
    const std::string key = fmt::format("exchange/q_prev/{}", l);
    q_prev_[l] = b.has(key) ? b.get_f32(key) : std::vector<float>();
  }
}

}  // namespace cohort::exchange
