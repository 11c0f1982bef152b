// What every exchange plan shares (Note [Exchange plans] in exchange/exchange.h): the round's
// sample and the encoded bits per sampled slot, the per-client state (error-feedback memory and
// compressor state), the encode/decode path of a client's message, and the round's finish
// around the plan's own transport.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "compress/compressor.h"
#include "core/client_store.h"
#include "core/layers.h"
#include "core/state.h"
#include "exchange/exchange.h"
#include "exchange/options.h"
#include "robust/aggregator.h"

namespace cohort::exchange {

class ExchangeBase : public Exchange {
 public:
  void begin_round(std::uint32_t round, std::span<const int> sampled) final;
  // The bits' all-reduce, the plan's finish_round, then the round's validity over the ranks.
  bool finish(float* g, double total_weight) final;
  const std::vector<std::int64_t>& client_bits() const final { return bits_; }
  std::int64_t uplink_bits() const final;
  std::span<const float> error_memory(int c) const final;
  const robust::Report& report() const final { return report_; }
  void save(StateBundle& b) const final { save_state(b); }
  void load(const StateBundle& b) final { load_state(b); }
  void set_validation(std::function<double(const float*)> loss, const float* x) final;

 protected:
  ExchangeBase(ExchangeOptions o, comm::Communicator& comm, const std::vector<LayerView>& layers,
               std::uint64_t seed, int num_clients, ClientStore& store);

  // The plan's part of a round: its buffers emptied for a new round; its transport and the
  // aggregate g (after the bits' all-reduce, before the validity's; false: a message was not
  // finite or too large); the state it carries between rounds (Note [Checkpoints]).
  virtual void start_round() = 0;
  virtual bool finish_round(float* g, double total_weight) = 0;
  virtual void save_state(StateBundle&) const {}
  virtual void load_state(const StateBundle&) {}

  // The per-client state, slots "error" and "compressor" of the client store (Note [Client
  // store] in core/client_store.h): client c's error-feedback memory (d floats) and its
  // compressor state (empty when the compressor keeps none), each zero from the client's first
  // use on.
  std::span<float> client_error(int c);
  std::span<float> client_state(int c);

  // Whether client c's message keeps error-feedback memory: enabled, an honest client, and a
  // compressor that loses something. Compressor none sends p itself: the memory would only
  // ever hold zeros (O(d) per client), so error feedback keeps none.
  bool keeps_error(bool byzantine) const;
  // A message that is not finite (or too large for the exact sums) must stop the run as
  // diverged even when a compressor would turn it into finite values (sign, randk, qsgd max).
  // Robust rules drop such messages themselves, so for them this checks nothing.
  void check_message(std::span<const float> p);
  // Client c's encoded size in the round's sample.
  void set_bits(int c, std::int64_t bits);
  // The encode/decode path of the plans that send compressed messages: error feedback, the
  // message check, the real encoding (its bits recorded) and the decoded message, which is
  // returned (valid until the next call). wire: receives the encoding; when null, compressor
  // none skips encoding and returns p itself.
  std::span<const float> encode_decode(int c, std::span<float> p, bool byzantine,
                                       compress::Encoded* wire);
  // The compressor as describe() prints it ("topk + error feedback").
  std::string compressor_description() const;
  // The most messages one round adds (one per sampled client; every client when per_round is
  // unset), for the exact sums' precision.
  std::int64_t max_messages() const;

  ExchangeOptions o_;
  comm::Communicator& comm_;
  std::vector<compress::LayerShape> layers_;
  std::unique_ptr<compress::Compressor> compressor_;
  std::uint64_t seed_;
  std::uint32_t round_ = 0;
  std::int64_t d_;
  std::vector<float> decoded_;  // one decoded message (d floats)
  robust::Report report_;
  std::function<double(const float*)> validation_loss_;
  const float* x_ = nullptr;

 private:
  // Client c's slot in the round's sample.
  std::size_t slot(int c) const;

  int num_clients_;
  std::vector<std::int64_t> bits_;  // per slot of the round's sample
  std::vector<int> sampled_;        // the round's sample (slot -> client)
  bool messages_finite_ = true;
  ClientStore& store_;
  ClientStore::Slot error_slot_ = ClientStore::kNone, state_slot_ = ClientStore::kNone;
};

}  // namespace cohort::exchange
