// data.name = inline: a small data set written in the config (optimisation studies).
#include <algorithm>
#include <cstdint>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.h"
#include "data/loaders.h"

namespace cohort::data {
namespace {

Dataset inline_dataset(const Config& cfg) {
  const std::vector<double> x = cfg.get_float_list("data.x"), y = cfg.get_float_list("data.y");
  const std::int64_t dim = cfg.get_int("data.dim");
  require_usage(!y.empty(), "data.y is empty: data.name = inline needs at least one row");
  require_usage(static_cast<std::int64_t>(x.size()) == dim * static_cast<std::int64_t>(y.size()),
                fmt::format("data.x has {} values; expected rows * dim = {} * {} = {}", x.size(),
                            y.size(), dim, y.size() * dim));
  Dataset ds;
  ds.rows = static_cast<std::int64_t>(y.size());
  ds.dim = dim;
  ds.x.assign(x.begin(), x.end());
  const std::vector<long long> shape = cfg.get_int_list("data.shape");
  if (!shape.empty()) {
    long long product = 1;  // stops growing past dim, so it cannot overflow
    for (const long long v : shape) product = product > dim ? product : product * v;
    require_usage(shape.size() == 3 && product == dim,
                  fmt::format("data.shape must be [channels, height, width] with product "
                              "data.dim = {}, got {}",
                              dim, fmt::join(shape, ", ")));
    ds.image = Shape{shape[0], shape[1], shape[2]};
  }
  if (cfg.get_string("data.task") == "regression") {
    ds.targets.assign(y.begin(), y.end());
    return ds;
  }
  std::vector<double> classes(y);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  for (double v : y)
    ds.labels.push_back(static_cast<std::int32_t>(
        std::lower_bound(classes.begin(), classes.end(), v) - classes.begin()));
  ds.num_classes = static_cast<int>(classes.size());
  require_usage(ds.num_classes >= 2, "data.y: classification needs at least two distinct labels");
  return ds;
}

}  // namespace

SourceRegistration inline_registration() {
  return {"inline",
          "a small data set written in the config; row i belongs to client i mod N; the test set "
          "is the training set (for optimisation studies)",
          {opt_int("dim", 1, "features per row", 1),
           opt_float_list("x", "[]", "features, row after row (rows * dim values)"),
           opt_float_list("y", "[]", "one target (regression) or class label per row"),
           opt_int_list("shape", "[]",
                        "[channels, height, width] of a row (images); empty: flat rows", 1),
           opt_enum("task", "regression", {"regression", "classification"},
                    "targets are real values, or labels remapped to 0..C-1")},
          [](const Config& cfg) {
            LoadedData out;
            out.data.train = inline_dataset(cfg);
            out.data.test = out.data.train;
            if (cfg.get_string("data.partition.name") != "pool") {  // pool clients share the rows
              const int n = static_cast<int>(cfg.get_int("clients.num_clients"));
              const std::int64_t rows = out.data.train.rows;
              require_usage(rows >= n,
                            fmt::format("data.name = inline has {} rows but clients.num_clients = "
                                        "{}: every client needs at least one row (or use "
                                        "data.partition.name = pool)",
                                        rows, n));
              out.natural.resize(static_cast<std::size_t>(n));
              for (std::int64_t i = 0; i < rows; ++i) out.natural[i % n].push_back(i);
            }
            return out;
          }};
}

}  // namespace cohort::data
