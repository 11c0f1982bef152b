// The single-process backend: one rank, collectives are the identity.
#include <cstdlib>
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
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() {
  return std::make_unique<SelfCommunicator>();
}

}  // namespace cohort::comm
