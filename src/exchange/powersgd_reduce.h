// The PowerSGD reduce plan (compressor powersgd, mode reduce; Note [Exchange plans] in
// exchange/exchange.h): each rank keeps its sampled clients' messages M_i for the round, and
// PowerSgdAllReduce (exchange/powersgd_allreduce.h) turns them into g = P_hat Q^T. Error feedback
// is against that aggregate: e_i = M_i - P_hat Q^T.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exchange/base.h"
#include "exchange/powersgd_allreduce.h"

namespace cohort::exchange {

class PowerSgdReduceExchange final : public ExchangeBase {
 public:
  // o: compressor powersgd in mode reduce, aggregator mean.
  PowerSgdReduceExchange(ExchangeOptions o, comm::Communicator& comm,
                         const std::vector<LayerView>& layers, std::uint64_t seed, int num_clients, ClientStore& store);
  std::string describe() const override;
  void submit(int c, std::span<float> message, double weight, bool byzantine) override;

 private:
  void start_round() override;
  bool finish_round(float* g, double total_weight) override;
  void save_state(StateBundle& b) const override;
  void load_state(const StateBundle& b) override;

  PowerSgdAllReduce allreduce_;
  struct Pending {
    int client;
    double weight;
    std::vector<float> m;  // p = u + e (with error feedback)
    bool byzantine;
  };
  std::vector<Pending> pending_;  // the round's messages of this rank's clients
};

}  // namespace cohort::exchange
