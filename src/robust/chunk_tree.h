// Sums over all d coordinates that do not depend on how the coordinates are split over ranks.
//
// Note [Chunked sums]
// The distance rules (krum, multikrum, bulyan, gm, cclip) need sums over all d coordinates of
// per-coordinate products: the entries of a Gram matrix. Under the shard plan each rank holds a
// block of coordinates, so a running sum would add the terms in an order that depends on the
// rank count, and a selection rule could pick a different message at 2 ranks than at 1. The
// order is therefore fixed by the coordinates alone:
//  - the coordinates are cut into chunks of kSumChunk (the last may be shorter); a chunk's
//    partial sums are computed the same way wherever it is held (the kernels see only the
//    chunk);
//  - chunk partials are added over a fixed binary tree on chunk indices: node (l, i) covers
//    chunks [i 2^l, (i+1) 2^l) and is left + right of its two children, or its left child alone
//    when the right one starts past the last chunk.
// A rank holding chunks [a, b) (shard blocks start on chunk boundaries) folds its chunks into the
// largest tree nodes inside [a, b) as they arrive (at most 2 log2 of the chunk count at a time),
// the ranks all-gather those nodes, and every rank evaluates the root from them. Every addition
// is the same one at any rank count, so the sums are bitwise those of the single-block (gather
// plan) computation, and no rank ever holds more than O(log) partial vectors.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace cohort::robust {

// Coordinates per chunk; shard blocks start at multiples of it.
inline constexpr std::int64_t kSumChunk = 4096;

// All-gathers bytes over the ranks that hold the other blocks of the same messages (rank order).
using GatherBytes =
    std::function<std::vector<std::vector<std::uint8_t>>(std::span<const std::uint8_t>)>;

class ChunkTree {
 public:
  // This rank adds chunks first, first+1, ... of total_chunks; each partial has `width` values.
  ChunkTree(std::int64_t first, std::int64_t total_chunks, std::size_t width);
  // Adds the partials of the next chunk (width values).
  void push(const double* partial);
  // The sum over all total_chunks chunks: collective over `gather` (every rank calls it once),
  // or local when gather is empty (this rank then must have pushed every chunk).
  std::vector<double> total(const GatherBytes& gather);
  std::int64_t next_chunk() const { return next_; }

 private:
  struct Node {
    int level;
    std::int64_t index;
    std::vector<double> v;
  };
  // First chunk of node (level, index) lies past the last chunk.
  bool empty(int level, std::int64_t index) const;

  std::int64_t total_chunks_, next_;
  std::size_t width_;
  int root_level_ = 0;
  std::vector<Node> stack_;
};

}  // namespace cohort::robust
