// The model broadcast of a round (docs/algorithms.md §2 "Downlink").
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "core/config.h"
#include "core/layers.h"
#include "core/state.h"

namespace cohort::exchange {

// The model broadcast. With downlink_compressor none, clients receive x itself (32 d bits per
// client). Otherwise the server sends C(x - x_hat) and every client's copy becomes
// x_hat += decode(...) (x_hat starts as the initial model, which clients generate from the seed).
class Downlink {
 public:
  Downlink(const Config& cfg, const std::vector<LayerView>& layers, std::uint64_t seed,
           std::span<const float> x0);
  // The model the round's clients train from; *bits = encoded size of one broadcast message.
  std::span<const float> broadcast(std::span<const float> x, std::uint32_t round,
                                   std::int64_t* bits);
  std::string describe() const;
  void save(StateBundle& b) const;  // Note [Checkpoints]
  void load(const StateBundle& b);

 private:
  std::unique_ptr<compress::Compressor> compressor_;
  std::vector<compress::LayerShape> layers_;
  std::uint64_t seed_;
  std::vector<float> x_hat_, diff_, decoded_, state_;
};

// The downlink stream's client id (Note [Compression streams]).
inline constexpr std::uint32_t kDownlinkClient = 0xFFFFFFFEu;

}  // namespace cohort::exchange
