#include "comm/communicator.h"

#include <stdexcept>

namespace cohort::comm {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kExact128: return 16;
  }
  throw std::logic_error("unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kExact128: return "exact128";
  }
  return "?";
}

double Communicator::allreduce_scalar(double v, ReduceOp op) {
  allreduce(View{&v, 1, DType::kF64}, op);
  return v;
}

std::int64_t Communicator::allreduce_scalar(std::int64_t v, ReduceOp op) {
  allreduce(View{&v, 1, DType::kI64}, op);
  return v;
}

}  // namespace cohort::comm
