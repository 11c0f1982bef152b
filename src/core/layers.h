// The layers of a flat float32 parameter buffer. The models lay their parameters out this way,
// and the compressors and the exchange cut messages along the same layers; the view lives here,
// not in model/, so that those need not include the models.
#pragma once

#include <cstdint>
#include <string>

namespace cohort {

// One parameter tensor inside the flat buffer, viewed as a row-major rows x cols matrix
// (biases are rows x 1).
struct LayerView {
  std::string name;
  std::int64_t offset = 0;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t size() const { return rows * cols; }
};

}  // namespace cohort
