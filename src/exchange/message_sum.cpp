#include "exchange/message_sum.h"

#include <algorithm>
#include <cmath>

namespace cohort::exchange {

MessageSum::MessageSum(bool majority, SumMode mode, std::int64_t d, std::int64_t max_terms)
    : majority_(majority), mode_(mode), d_(d) {
  if (majority_) {
    votes_.assign(static_cast<std::size_t>(d_), 0);
  } else if (mode_ == SumMode::kFloat) {
    float_sum_.assign(static_cast<std::size_t>(d_), 0.0f);
  } else {
    sum_ = BlockSum(d_, max_terms);
  }
}

void MessageSum::clear() {
  sum_.clear();
  std::fill(float_sum_.begin(), float_sum_.end(), 0.0f);
  std::fill(votes_.begin(), votes_.end(), 0);
  decoded_finite_ = true;
}

void MessageSum::add(std::span<const float> decoded, double weight) {
  if (!majority_ && mode_ == SumMode::kFloat) {
    for (std::size_t i = 0; i < decoded.size(); ++i)
      float_sum_[i] += static_cast<float>(weight * static_cast<double>(decoded[i]));
    return;
  }
  if (!majority_) {
    sum_.add(decoded.data(), weight);
    return;
  }
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    if (!std::isfinite(decoded[i])) decoded_finite_ = false;
    votes_[i] += std::signbit(decoded[i]) ? -1 : 1;  // the sent sign bit; sign(0) = +1
  }
}

bool MessageSum::finish(comm::Communicator* comm, float* g, double total_weight) {
  if (majority_) {
    if (comm != nullptr)
      comm->allreduce(comm::View{votes_.data(), d_, comm::DType::kI32}, comm::ReduceOp::kSum);
    for (std::size_t i = 0; i < votes_.size(); ++i) g[i] = votes_[i] >= 0 ? 1.0f : -1.0f;
    return decoded_finite_;
  }
  if (mode_ == SumMode::kFloat) {
    if (comm != nullptr)
      comm->allreduce(comm::View{float_sum_.data(), d_, comm::DType::kF32}, comm::ReduceOp::kSum);
    bool finite = true;
    for (std::int64_t i = 0; i < d_; ++i) {
      g[i] = static_cast<float>(static_cast<double>(float_sum_[i]) / total_weight);
      finite = finite && std::isfinite(float_sum_[i]);
    }
    return finite;
  }
  return finish_block_sum(sum_, comm, g, total_weight);
}

void MessageSum::save(StateBundle& b) const {
  if (sum_.size() > 0)
    b.i64["exchange/scales"] =
        std::vector<std::int64_t>(sum_.scales().begin(), sum_.scales().end());
}

void MessageSum::load(const StateBundle& b) {
  if (sum_.size() > 0) {
    const auto& s = b.get_i64("exchange/scales");
    sum_.set_scales(std::vector<std::int16_t>(s.begin(), s.end()));
  }
}

bool finish_block_sum(BlockSum& sum, comm::Communicator* comm, float* out, double divisor) {
  const auto meta = sum.seal();
  if (comm != nullptr)
    comm->allreduce(comm::View{meta.data(), static_cast<std::int64_t>(meta.size()),
                               comm::DType::kI32},
                    comm::ReduceOp::kMax);
  const auto spill = sum.pack_spill();
  if (comm != nullptr) {
    comm->allreduce(comm::View{sum.words().data(), sum.size(), comm::DType::kI64},
                    comm::ReduceOp::kSum);
    if (!spill.empty())  // the same size on every rank: the flags were max-reduced
      comm->allreduce(comm::View{spill.data(), static_cast<std::int64_t>(spill.size()),
                                 comm::DType::kI64},
                      comm::ReduceOp::kSum);
  }
  sum.read(out, divisor);
  return sum.valid();
}

}  // namespace cohort::exchange
