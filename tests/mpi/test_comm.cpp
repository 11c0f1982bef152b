// Collectives with data whose exact result is known (STYLE.md §7), at whatever rank count
// mpiexec gives (CTest runs 1, 2 and 4).
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "core/exact_sum.h"

using namespace cohort;

TEST_CASE("allreduce of integers and powers of two is exact", "[mpi]") {
  auto comm = comm::make_mpi_communicator();
  const int p = comm->size(), r = comm->rank();
  for (std::int64_t n : {0, 1, 7, 1000003}) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[i] = i + r;
    comm->allreduce(comm::View{v.data(), n, comm::DType::kI64}, comm::ReduceOp::kSum);
    for (std::int64_t i = 0; i < n; ++i) REQUIRE(v[i] == p * i + p * (p - 1) / 2);
  }
  double x = 0.5 * (r + 1);
  REQUIRE(comm->allreduce_scalar(x, comm::ReduceOp::kMax) == 0.5 * p);
  REQUIRE(comm->allreduce_scalar(x, comm::ReduceOp::kMin) == 0.5);
}

TEST_CASE("exact128 sums do not depend on how terms are split across ranks", "[mpi]") {
  auto comm = comm::make_mpi_communicator();
  const int p = comm->size(), r = comm->rank();
  // 64 terms of very different magnitudes whose float sum depends on the order.
  std::vector<float> terms;
  for (int i = 0; i < 64; ++i) terms.push_back((i % 2 ? -1.0f : 1.0f) * std::ldexp(1.1f, (i * 7) % 40 - 20));
  ExactAccumulator reference(1), mine(1);
  for (float t : terms) reference.add(&t);
  for (int i = static_cast<int>(64L * r / p); i < static_cast<int>(64L * (r + 1) / p); ++i)
    mine.add(&terms[i]);
  comm->allreduce(comm::View{mine.data(), 1, comm::DType::kExact128}, comm::ReduceOp::kSum);
  REQUIRE(mine.data()[0] == reference.data()[0]);
  // And it equals the exactly computed double sum (all terms lie on the 2^-64 grid).
  long double exact = 0;
  for (float t : terms) exact += t;
  REQUIRE(mine.value(0) == static_cast<double>(exact));
}
