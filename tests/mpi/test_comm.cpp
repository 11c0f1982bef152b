// Collectives with data whose exact result is known (integers and powers of two, compared for
// equality), at whatever rank count mpiexec gives (CTest runs 1, 2 and 4).
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <vector>

#include "comm/communicator.h"
#include "core/block_sum.h"
#include "core/exact_sum.h"
#include "exchange/message_sum.h"

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

TEST_CASE("block sums over the ranks equal the one-process sum bit for bit", "[mpi]") {
  // Note [Deterministic sums]: terms dealt to ranks in a shuffled order; three rounds whose
  // magnitudes jump (higher levels on some blocks) and fall; the one-process sum of the same
  // terms, computed on every rank, is the reference.
  auto comm = comm::make_mpi_communicator();
  const int p = comm->size(), r = comm->rank();
  const std::int64_t d = 2 * BlockSum::kBlock + 77;
  const int n = 9;
  BlockSum mine(d, n), all(d, n);
  for (int round = 0; round < 3; ++round) {
    const float scale = round == 1 ? 1e6f : round == 2 ? 1e-9f : 1.0f;
    std::vector<std::vector<float>> terms(n, std::vector<float>(static_cast<std::size_t>(d)));
    for (int t = 0; t < n; ++t)
      for (std::int64_t i = 0; i < d; ++i)
        terms[t][i] =
            scale * std::ldexp(static_cast<float>((i * 7919 + t * 104729) % 2001) - 1000.0f,
                               static_cast<int>((i + t) % 23) - 11);
    mine.clear();
    all.clear();
    const double w = 1.0 / 3;
    for (int t = 0; t < n; ++t) {
      all.add(terms[t].data(), w);
      if ((t * 5 + round) % p == r) mine.add(terms[t].data(), w);  // a different deal each round
    }
    std::vector<float> got(static_cast<std::size_t>(d)), want(got.size());
    REQUIRE(exchange::finish_block_sum(mine, comm.get(), got.data(), 9.0));
    REQUIRE(exchange::finish_block_sum(all, nullptr, want.data(), 9.0));
    INFO("round " << round << " at " << p << " ranks");
    REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    REQUIRE(std::equal(mine.scales().begin(), mine.scales().end(), all.scales().begin()));
  }
}

TEST_CASE("alltoallv delivers every block, empty ones included, in rank order", "[mpi]") {
  auto comm = comm::make_mpi_communicator();
  const int p = comm->size(), r = comm->rank();
  // Rank s sends (s + t) % 3 * 1000 + s values to rank t (0 from rank 0 to rank 0): value
  // k of that block is s * 1e6 + t * 1e3 + k, exact in float for these sizes.
  const auto count = [](int s, int t) -> std::int64_t { return (s + t) % 3 * 1000 + s; };
  std::vector<std::vector<float>> out(static_cast<std::size_t>(p));
  std::vector<const float*> send;
  std::vector<std::int64_t> send_counts, recv_counts;
  for (int t = 0; t < p; ++t) {
    for (std::int64_t k = 0; k < count(r, t); ++k)
      out[t].push_back(static_cast<float>(r * 1000000 + t * 1000 + k % 1000));
    send.push_back(out[t].data());
    send_counts.push_back(count(r, t));
    recv_counts.push_back(count(t, r));
  }
  std::int64_t total = 0;
  for (auto c : recv_counts) total += c;
  std::vector<float> recv(static_cast<std::size_t>(total), -1.0f);
  comm->alltoallv(send, send_counts, recv.data(), recv_counts);
  std::int64_t at = 0;
  for (int s = 0; s < p; ++s)
    for (std::int64_t k = 0; k < count(s, r); ++k)
      REQUIRE(recv[at++] == static_cast<float>(s * 1000000 + r * 1000 + k % 1000));
}
