// Run state as named arrays: what a checkpoint holds (Note [Checkpoints] in metrics/checkpoint.h).
//
// Components save what they must carry from one round to the next into a StateBundle under
// names of their own ("server/m", "exchange/scales") and read it back from one. State that
// belongs to a client lives in a ClientSlot (one row per client id, held by the rank that owns
// the client), so a checkpoint written at one rank count can be read at another: each rank
// takes the rows of the clients it owns.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace cohort {

// One kind of per-client state: a row of `width` floats for each listed client, in id order.
struct ClientSlot {
  std::int64_t width = 0;
  std::vector<std::int64_t> ids;
  std::vector<float> values;  // ids.size() x width
  std::span<const float> row(std::size_t k) const {
    return {values.data() + k * static_cast<std::size_t>(width), static_cast<std::size_t>(width)};
  }
};

struct StateBundle {
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<double>> f64;
  std::map<std::string, std::vector<std::int64_t>> i64;
  std::map<std::string, ClientSlot> clients;

  // Adds one client's row to a slot (rows are kept in id order when merged).
  void put_client(const std::string& slot, std::int64_t id, std::span<const float> row);
  // Throws std::runtime_error naming the entry when it is missing (a checkpoint from a run whose
  // components differ is refused before this, by its config).
  const std::vector<float>& get_f32(const std::string& name) const;
  const std::vector<double>& get_f64(const std::string& name) const;
  const std::vector<std::int64_t>& get_i64(const std::string& name) const;
  bool has(const std::string& name) const;

  // Bytes for the transport between ranks, and back.
  std::vector<std::uint8_t> serialize() const;
  static StateBundle deserialize(std::span<const std::uint8_t> bytes);
  // Moves other's entries in; client slots are merged and sorted by id.
  void merge(StateBundle&& other);
};

}  // namespace cohort
