// In-memory datasets and client partitions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cohort::data {

// The shape of one sample: channels x height x width values, stored channel-major (each channel
// a row-major height x width image). Flat samples of dim features are dim x 1 x 1.
struct Shape {
  std::int64_t channels = 0;
  std::int64_t height = 1;
  std::int64_t width = 1;
  std::int64_t size() const { return channels * height * width; }
  bool flat() const { return height == 1 && width == 1; }
  bool operator==(const Shape&) const = default;
};

// Dense row-major samples. Classification sets fill `labels` (0..num_classes-1) and leave
// `targets` empty; regression sets fill `targets` and have num_classes == 0.
struct Dataset {
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  int num_classes = 0;
  std::vector<float> x;             // rows * dim
  std::vector<std::int32_t> labels;  // rows (classification)
  std::vector<float> targets;        // rows (regression)
  // Images set it (Fashion-MNIST: 1 x 28 x 28); channels == 0 means flat rows (dim x 1 x 1).
  Shape image;

  Shape shape() const { return image.channels > 0 ? image : Shape{dim, 1, 1}; }

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
