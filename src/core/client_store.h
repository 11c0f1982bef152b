// Per-client state, held by the rank that owns the client (Note [Client store]).
//
// Note [Client store]
// State a client carries from one participation to the next (error-feedback memory, worker
// momentum, a compressor's state such as PowerSGD's warm Q; later control variates and
// personal models) lives in one ClientStore per rank, in named slots. A component declares its
// slot once, when the run is built, with the width of one client's row and the label the memory
// account prints (Note [Client state account] in algo/run_state.h); the account and the budget
// check are computed from the declared slots, so a new kind of state is counted as soon as it
// exists. A client's row is allocated, zero-filled, at its first use, so a client that never
// took part costs nothing (Note [Population scale] in algo/runner.cpp). The store holds only
// clients of this rank's block [begin, end): asking for another client's row is a logic error,
// which keeps state from silently landing on the wrong rank.
//
// A checkpoint saves every slot under its name as one row per client id (core/state.h); load
// keeps the rows of the clients this rank owns, so a checkpoint written at one rank count is read
// at any other.
//
// row(), find() and clients() may be called from the client threads of a round (Note [Client
// threads] in core/worker_pool.h), for different clients: a lock guards the maps, and a row's
// floats never move once allocated, so a span stays valid while other rows are added.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/state.h"

namespace cohort {

class ClientStore {
 public:
  // A declared slot: its checkpoint name ("error"), account label ("error feedback") and the
  // floats one client's row holds.
  struct SlotInfo {
    std::string name, label;
    std::int64_t width = 0;
  };
  using Slot = int;  // a handle returned by declare()

  ClientStore() = default;
  // The store of the rank that owns clients [begin, end).
  ClientStore(int begin, int end) : begin_(begin), end_(end) {}

  // Declares a slot; names are unique (a second declaration of a name is a logic error).
  // A width of 0 declares nothing and returns kNone: row() and find() are never called on it.
  Slot declare(std::string name, std::string label, std::int64_t width);
  static constexpr Slot kNone = -1;
  // The slot declared under `name`, or kNone.
  Slot slot(const std::string& name) const;

  // Client c's row in slot s, zero-filled at its first use.
  std::span<float> row(Slot s, int c);
  // Client c's row, or an empty span when c has none yet.
  std::span<const float> find(Slot s, int c) const;
  // Clients with a row in slot s.
  std::size_t clients(Slot s) const {
    std::lock_guard<std::mutex> lock(mu_);
    return data_.at(static_cast<std::size_t>(s)).size();
  }
  const std::vector<SlotInfo>& slots() const { return slots_; }
  bool owns(int c) const { return c >= begin_ && c < end_; }

  // Every slot's rows into b (client slots named after the slots); load replaces every slot's
  // rows with those of b's rows that belong to clients this rank owns. A slot absent from b is
  // left empty; a row of another width is refused (std::runtime_error naming the slot).
  void save(StateBundle& b) const;
  void load(const StateBundle& b);

 private:
  void check_client(int c) const;
  int begin_ = 0, end_ = 0;
  std::vector<SlotInfo> slots_;
  std::vector<std::unordered_map<int, std::unique_ptr<float[]>>> data_;
  mutable std::mutex mu_;  // guards data_'s maps (not the rows' floats)
};

}  // namespace cohort
