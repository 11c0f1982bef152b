// cm: coordinate-wise median (docs/algorithms.md §3), and the per-coordinate sorting network that
// cm, tm and bulyan share.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "robust/aggregator.h"

namespace cohort::robust {

// Note [Sorting networks]
// An order statistic per coordinate with std::nth_element costs ~100 ns per coordinate at
// n = 25, far below the 5 GB/s these rules must reach. Instead the n values of 16 (or more)
// coordinates are sorted side by side with one data-independent compare-exchange network:
// each comparator is a vector min and max over a block of coordinates, so it runs at SIMD width
// with no branches. The network is Batcher's odd-even merge sort for the next power of two, with
// the missing inputs treated as +inf and removed at build time (a comparator against +inf is a
// no-op or a relabelling), then pruned to the comparators that can reach the ranks the rule
// reads. min and max are exact, so the result does not depend on the ISA path.
struct SortNetwork {
  int n = 0;
  std::vector<std::uint16_t> lo, hi;  // comparator c: slot lo[c] gets the min, hi[c] the max
  std::vector<int> rank_slot;         // after the network, rank p (0 = smallest) is in this slot
};

// A network that puts ranks [first, last) of n values in place (other ranks unspecified).
SortNetwork make_sort_network(int n, int first, int last);

// For each block of coordinates: copies rows[*][k0, k0+len) into slots (slot r = row r, row
// stride `stride`), runs the network, then calls reduce(k0, len, slots, stride).
void sort_columns(std::span<const float* const> rows, std::int64_t d, const SortNetwork& net,
                  const std::function<void(std::int64_t k0, std::int64_t len, const float* slots,
                                           std::int64_t stride)>& reduce);

class CoordinateMedian final : public Aggregator {
 public:
  std::string name() const override { return "cm"; }
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;
};

// Its schema entry and factory (Note [Registration]).
AggregatorRegistration cm_registration();

}  // namespace cohort::robust
