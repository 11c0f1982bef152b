// An all-gather among the threads of one process, for running a rule on coordinate blocks in
// parallel threads exactly as the shard plan runs it on ranks (Note [Chunked sums]): used by
// `cohort bench aggregate --threads` and the shard tests.
#pragma once

#include <barrier>
#include <cstdint>
#include <span>
#include <vector>

#include "robust/chunk_tree.h"

namespace cohort::robust {

class ThreadGather {
 public:
  explicit ThreadGather(int threads) : slots_(static_cast<std::size_t>(threads)), sync_(threads) {}
  // The gather function of thread r (every thread calls its own, the same number of times).
  GatherBytes for_thread(int r) {
    return [this, r](std::span<const std::uint8_t> mine) {
      slots_[static_cast<std::size_t>(r)].assign(mine.begin(), mine.end());
      sync_.arrive_and_wait();
      auto all = slots_;
      sync_.arrive_and_wait();
      return all;
    };
  }

 private:
  std::vector<std::vector<std::uint8_t>> slots_;
  std::barrier<> sync_;
};

// Coordinates [first, second) of block r of P: whole kSumChunk chunks, as the shard plan cuts.
inline std::pair<std::int64_t, std::int64_t> shard_block(std::int64_t d, int r, int P) {
  const std::int64_t chunks = (d + kSumChunk - 1) / kSumChunk;
  return {std::min(d, chunks * r / P * kSumChunk), std::min(d, chunks * (r + 1) / P * kSumChunk)};
}

}  // namespace cohort::robust
