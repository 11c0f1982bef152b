// In-memory datasets and client partitions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cohort::data {

// Dense row-major samples. Classification sets fill `labels` (0..num_classes-1) and leave
// `targets` empty; regression sets fill `targets` and have num_classes == 0.
struct Dataset {
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  int num_classes = 0;
  std::vector<float> x;             // rows * dim
  std::vector<std::int32_t> labels;  // rows (classification)
  std::vector<float> targets;        // rows (regression)

  bool is_regression() const { return num_classes == 0; }
  const float* row(std::int64_t i) const { return x.data() + i * dim; }
};

struct TrainTest {
  Dataset train;
  Dataset test;
};

// client -> sorted indices into the training set. Every training sample belongs to exactly
// one client.
using Partition = std::vector<std::vector<std::int64_t>>;

}  // namespace cohort::data
