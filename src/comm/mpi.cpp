// The MPI backend. Every MPI return code is checked; a failure aborts the job with the rank,
// host and call (docs/architecture.md "Errors").
#include <mpi.h>

#include <algorithm>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace cohort::comm {
namespace {

#define COHORT_MPI_CHECK(call)                                                           \
  do {                                                                                   \
    const int rc_ = (call);                                                              \
    if (rc_ != MPI_SUCCESS) mpi_fail(#call, rc_, __FILE__, __LINE__);                    \
  } while (0)

[[noreturn]] void mpi_fail(const char* call, int rc, const char* file, int line) {
  char err[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, err, &len);
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  char host[MPI_MAX_PROCESSOR_NAME];
  int hlen = 0;
  MPI_Get_processor_name(host, &hlen);
  std::fprintf(stderr, "cohort: rank %d on %s: %s failed at %s:%d: %s\n", rank, host, call, file,
               line, err);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

// Wrapping 128-bit addition is associative and commutative, so MPI may combine partial sums
// in any order and every rank count gives the same bits (Note [Exact small sums]).
void exact128_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const unsigned __int128*>(in);
  auto* b = static_cast<unsigned __int128*>(inout);
  for (int i = 0; i < *len; ++i) b[i] += a[i];
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    COHORT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    COHORT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    COHORT_MPI_CHECK(MPI_Type_contiguous(2, MPI_UINT64_T, &exact_type_));
    COHORT_MPI_CHECK(MPI_Type_commit(&exact_type_));
    COHORT_MPI_CHECK(MPI_Op_create(&exact128_sum, /*commute=*/1, &exact_sum_));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      for (auto& [ranks, c] : graphs_) MPI_Comm_free(&c);
      MPI_Op_free(&exact_sum_);
      MPI_Type_free(&exact_type_);
    }
  }
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool supports(DType dtype, ReduceOp op, Memory memory) const override {
    return memory == Memory::kHost && (dtype != DType::kExact128 || op == ReduceOp::kSum);
  }

  void allreduce(View v, ReduceOp op) override {
    if (!supports(v.dtype, op, v.memory))
      throw std::logic_error(std::string("mpi backend: unsupported allreduce of ") +
                             dtype_name(v.dtype));
    if (size_ == 1 || v.count == 0) return;
    MPI_Op mop = op == ReduceOp::kSum ? MPI_SUM : op == ReduceOp::kMin ? MPI_MIN : MPI_MAX;
    if (v.dtype == DType::kExact128) mop = exact_sum_;
    // MPI counts are int: large buffers go in pieces.
    const std::int64_t kMaxChunk = 1 << 28;
    auto* base = static_cast<char*>(v.data);
    for (std::int64_t off = 0; off < v.count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min<std::int64_t>(kMaxChunk, v.count - off));
      COHORT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, base + off * dtype_size(v.dtype), n,
                                     mpi_type(v.dtype), mop, MPI_COMM_WORLD));
    }
  }

  void broadcast(View v, int root) override {
    if (v.memory != Memory::kHost) throw std::logic_error("mpi backend: host memory only");
    const std::int64_t kMaxChunk = 1 << 28;
    auto* base = static_cast<char*>(v.data);
    for (std::int64_t off = 0; off < v.count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min<std::int64_t>(kMaxChunk, v.count - off));
      COHORT_MPI_CHECK(
          MPI_Bcast(base + off * dtype_size(v.dtype), n, mpi_type(v.dtype), root, MPI_COMM_WORLD));
    }
  }

  std::vector<std::vector<std::uint8_t>> allgather_bytes(
      std::span<const std::uint8_t> mine) override {
    if (mine.size() > static_cast<std::size_t>(INT32_MAX))
      throw std::runtime_error("mpi backend: allgather of more than 2 GiB from one rank");
    std::vector<int> counts(static_cast<std::size_t>(size_)), displs(counts.size());
    const int n = static_cast<int>(mine.size());
    COHORT_MPI_CHECK(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD));
    std::int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total > INT32_MAX)
        throw std::runtime_error("mpi backend: allgather of more than 2 GiB in total");
      displs[r] = static_cast<int>(total);
      total += counts[r];
    }
    std::vector<std::uint8_t> all(static_cast<std::size_t>(total));
    COHORT_MPI_CHECK(MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(),
                                    displs.data(), MPI_BYTE, MPI_COMM_WORLD));
    std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r)
      out[r].assign(all.begin() + displs[r], all.begin() + displs[r] + counts[r]);
    return out;
  }

  // Point-to-point in pieces of at most 2^28 floats (MPI counts are int), all posted at once;
  // the piece index is the tag, so the pieces of one pair cannot be confused.
  void alltoallv(std::span<const float* const> send, std::span<const std::int64_t> send_counts,
                 float* recv, std::span<const std::int64_t> recv_counts) override {
    if (send.size() != static_cast<std::size_t>(size_) ||
        send_counts.size() != static_cast<std::size_t>(size_) ||
        recv_counts.size() != static_cast<std::size_t>(size_))
      throw std::logic_error("mpi backend: alltoallv needs one count per rank");
    const std::int64_t kMaxChunk = 1 << 28;
    std::vector<MPI_Request> requests;
    std::int64_t at = 0;
    for (int r = 0; r < size_; ++r) {
      for (std::int64_t off = 0, piece = 0; off < recv_counts[r]; off += kMaxChunk, ++piece) {
        const int n = static_cast<int>(std::min(kMaxChunk, recv_counts[r] - off));
        requests.emplace_back();
        COHORT_MPI_CHECK(MPI_Irecv(recv + at + off, n, MPI_FLOAT, r, static_cast<int>(piece),
                                   MPI_COMM_WORLD, &requests.back()));
      }
      at += recv_counts[r];
    }
    for (int r = 0; r < size_; ++r) {
      for (std::int64_t off = 0, piece = 0; off < send_counts[r]; off += kMaxChunk, ++piece) {
        const int n = static_cast<int>(std::min(kMaxChunk, send_counts[r] - off));
        requests.emplace_back();
        COHORT_MPI_CHECK(MPI_Isend(send[r] + off, n, MPI_FLOAT, r, static_cast<int>(piece),
                                   MPI_COMM_WORLD, &requests.back()));
      }
    }
    COHORT_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(),
                                 MPI_STATUSES_IGNORE));
  }

  std::vector<std::vector<std::uint8_t>> neighbor_exchange(
      const std::vector<int>& neighbours,
      const std::vector<std::vector<std::uint8_t>>& send) override {
    if (send.size() != neighbours.size())
      throw std::logic_error("mpi backend: neighbor_exchange needs one buffer per neighbour");
    MPI_Comm graph = graph_comm(neighbours);
    const auto k = neighbours.size();
    std::vector<int> send_counts(k), recv_counts(k), sdispls(k), rdispls(k);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < k; ++i) {
      if (send[i].size() > static_cast<std::size_t>(INT32_MAX) || total > INT32_MAX)
        throw std::runtime_error("mpi backend: neighbour exchange of more than 2 GiB from one rank");
      send_counts[i] = static_cast<int>(send[i].size());
      sdispls[i] = static_cast<int>(total);
      total += send_counts[i];
    }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(total));
    for (std::size_t i = 0; i < k; ++i)
      std::copy(send[i].begin(), send[i].end(), out.begin() + sdispls[i]);
    COHORT_MPI_CHECK(MPI_Neighbor_alltoall(send_counts.data(), 1, MPI_INT, recv_counts.data(), 1,
                                           MPI_INT, graph));
    std::int64_t rtotal = 0;
    for (std::size_t i = 0; i < k; ++i) {
      if (rtotal > INT32_MAX)
        throw std::runtime_error("mpi backend: neighbour exchange of more than 2 GiB to one rank");
      rdispls[i] = static_cast<int>(rtotal);
      rtotal += recv_counts[i];
    }
    std::vector<std::uint8_t> in(static_cast<std::size_t>(rtotal));
    COHORT_MPI_CHECK(MPI_Neighbor_alltoallv(out.data(), send_counts.data(), sdispls.data(),
                                            MPI_BYTE, in.data(), recv_counts.data(),
                                            rdispls.data(), MPI_BYTE, graph));
    std::vector<std::vector<std::uint8_t>> result(k);
    for (std::size_t i = 0; i < k; ++i)
      result[i].assign(in.begin() + rdispls[i], in.begin() + rdispls[i] + recv_counts[i]);
    return result;
  }

  void barrier() override { COHORT_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::abort();
  }

 private:
  MPI_Datatype mpi_type(DType t) const {
    switch (t) {
      case DType::kF32: return MPI_FLOAT;
      case DType::kF64: return MPI_DOUBLE;
      case DType::kI32: return MPI_INT32_T;
      case DType::kI64: return MPI_INT64_T;
      case DType::kExact128: return exact_type_;
    }
    throw std::logic_error("unknown dtype");
  }

  // The distributed-graph communicator whose neighbours (in and out) are `ranks`.
  MPI_Comm graph_comm(const std::vector<int>& ranks) {
    auto it = graphs_.find(ranks);
    if (it != graphs_.end()) return it->second;
    MPI_Comm c = MPI_COMM_NULL;
    const int k = static_cast<int>(ranks.size());
    COHORT_MPI_CHECK(MPI_Dist_graph_create_adjacent(MPI_COMM_WORLD, k, ranks.data(),
                                                    MPI_UNWEIGHTED, k, ranks.data(),
                                                    MPI_UNWEIGHTED, MPI_INFO_NULL,
                                                    /*reorder=*/0, &c));
    graphs_.emplace(ranks, c);
    return c;
  }

  std::map<std::vector<int>, MPI_Comm> graphs_;
  int rank_ = 0, size_ = 1;
  MPI_Datatype exact_type_ = MPI_DATATYPE_NULL;
  MPI_Op exact_sum_ = MPI_OP_NULL;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace cohort::comm
