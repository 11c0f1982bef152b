// Shared by topk and randk: a sparse message (ascending indices and their values) written into a
// dense output.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace cohort::compress {

// out = 0 except out[idx[i]] = val[i]; idx ascending and < out.size(). A whole-buffer memset
// (glibc's is the fastest zero fill here, for large buffers about twice a store loop) and then
// the scatter, in ascending order.
template <class Index>
void write_sparse(std::span<const Index> idx, const float* val, std::span<float> out) {
  float* o = out.data();
  std::memset(o, 0, out.size() * sizeof(float));
  for (std::size_t i = 0; i < idx.size(); ++i) o[static_cast<std::size_t>(idx[i])] = val[i];
}

}  // namespace cohort::compress
