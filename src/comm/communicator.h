// The layer between cohort and a transport. It sees plain views (pointer, count, dtype,
// memory space), never models or Eigen types (docs/architecture.md "Backends"). A backend states
// what it supports before a run starts, so a run never fails half-way on an unsupported buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace cohort::comm {

// kExact128: 128-bit two's-complement fixed-point words, summed exactly
// (Note [Exact small sums] in core/exact_sum.h).
enum class DType { kF32, kF64, kI32, kI64, kExact128 };
enum class Memory { kHost, kDevice };
enum class ReduceOp { kSum, kMin, kMax };

struct View {
  void* data = nullptr;
  std::int64_t count = 0;
  DType dtype = DType::kF32;
  Memory memory = Memory::kHost;
};

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether allreduce/broadcast accept this dtype, op and memory space.
  virtual bool supports(DType dtype, ReduceOp op, Memory memory) const = 0;
  // In place; every rank ends with the same values. kExact128 supports kSum only.
  virtual void allreduce(View inout, ReduceOp op) = 0;
  virtual void broadcast(View inout, int root) = 0;
  // Every rank's bytes, in rank order (host memory; the gather plan's transport).
  virtual std::vector<std::vector<std::uint8_t>> allgather_bytes(
      std::span<const std::uint8_t> mine) = 0;
  // Personalised exchange of host floats (the shard plan's transport): send[r] holds
  // send_counts[r] values for rank r; `recv` receives, in rank order, recv_counts[r] values from
  // rank r. Counts may exceed 2^31.
  virtual void alltoallv(std::span<const float* const> send,
                         std::span<const std::int64_t> send_counts, float* recv,
                         std::span<const std::int64_t> recv_counts) = 0;
  // Neighbourhood exchange of bytes (decentralized gossip): `neighbours` are other ranks,
  // ascending, and the relation is symmetric (r lists s iff s lists r); send[k] goes to
  // neighbours[k] and the result holds, in the same order, what each neighbour sent. The MPI
  // backend runs it on a distributed-graph communicator of exactly those ranks
  // (MPI_Dist_graph_create_adjacent, created once per neighbour list and reused), with
  // MPI_Neighbor_alltoall for the sizes and MPI_Neighbor_alltoallv for the bytes, so a rank
  // talks only to its neighbours. Collective over all ranks' calls of one round.
  virtual std::vector<std::vector<std::uint8_t>> neighbor_exchange(
      const std::vector<int>& neighbours, const std::vector<std::vector<std::uint8_t>>& send) = 0;
  virtual void barrier() = 0;
  // Ends the whole job at once (a failure seen by one rank).
  [[noreturn]] virtual void abort(int code) = 0;

  // Convenience wrappers for scalars and small host arrays.
  double allreduce_scalar(double v, ReduceOp op);
  std::int64_t allreduce_scalar(std::int64_t v, ReduceOp op);
};

// MPI over MPI_COMM_WORLD (MPI must be initialised). Host memory only: the Open MPI in use is
// not CUDA-aware.
std::unique_ptr<Communicator> make_mpi_communicator();
// One process, no transport: every collective is the identity.
std::unique_ptr<Communicator> make_self_communicator();

}  // namespace cohort::comm
