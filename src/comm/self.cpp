// The single-process backend: one rank, collectives are the identity.
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "comm/communicator.h"

namespace cohort::comm {
namespace {

class SelfCommunicator final : public Communicator {
 public:
  std::string name() const override { return "self"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool supports(DType dtype, ReduceOp op, Memory memory) const override {
    return memory == Memory::kHost && (dtype != DType::kExact128 || op == ReduceOp::kSum);
  }
  void allreduce(View inout, ReduceOp op) override {
    if (!supports(inout.dtype, op, inout.memory))
      throw std::logic_error("self backend: unsupported allreduce");
  }
  void broadcast(View, int root) override {
    if (root != 0) throw std::logic_error("self backend: broadcast root must be 0");
  }
  std::vector<std::vector<std::uint8_t>> allgather_bytes(
      std::span<const std::uint8_t> mine) override {
    return {std::vector<std::uint8_t>(mine.begin(), mine.end())};
  }
  void alltoallv(std::span<const float* const> send, std::span<const std::int64_t> send_counts,
                 float* recv, std::span<const std::int64_t> recv_counts) override {
    if (send.size() != 1 || send_counts.size() != 1 || recv_counts.size() != 1 ||
        send_counts[0] != recv_counts[0])
      throw std::logic_error("self backend: alltoallv counts do not match");
    if (send_counts[0] > 0)
      std::memcpy(recv, send[0], sizeof(float) * static_cast<std::size_t>(send_counts[0]));
  }
  std::vector<std::vector<std::uint8_t>> neighbor_exchange(
      const std::vector<int>& neighbours, const std::vector<std::vector<std::uint8_t>>&) override {
    if (!neighbours.empty()) throw std::logic_error("self backend: one rank has no neighbours");
    return {};
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() {
  return std::make_unique<SelfCommunicator>();
}

}  // namespace cohort::comm
