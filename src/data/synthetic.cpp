// Train/test split and the synthetic problems.
//
// Note [Synthetic streams]
// Client k's data comes from Rng(seed, 0, k, Purpose::kDataGeneration) alone and its test rows
// are chosen by Rng(seed, 0, k, Purpose::kDataSplit), so a client's rows do not depend on how many
// other clients there are. Global quantities (the true weights of synthetic_linear) use
// client = kGlobalClient. Arithmetic is done in double; stored features are float, and fedprox
// labels are computed from the stored (float) features so they agree with what a model sees.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/limits.h"
#include "core/rng.h"
#include "data/loaders.h"

namespace cohort::data {
namespace {

void check_fraction(double test_fraction, const char* who) {
  require_usage(std::isfinite(test_fraction) && test_fraction >= 0.0 && test_fraction < 1.0,
                std::string(who) + ": test_fraction is " + std::to_string(test_fraction) +
                    "; it must lie in [0, 1)");
}

// Appends row i of src (features and label/target) to dst.
void append_row(Dataset& dst, const Dataset& src, std::int64_t i) {
  const float* x = src.row(i);
  dst.x.insert(dst.x.end(), x, x + src.dim);
  if (src.is_regression()) {
    dst.targets.push_back(src.targets[static_cast<std::size_t>(i)]);
  } else {
    dst.labels.push_back(src.labels[static_cast<std::size_t>(i)]);
  }
  ++dst.rows;
}

Dataset empty_like(const Dataset& src) {
  Dataset d;
  d.dim = src.dim;
  d.num_classes = src.num_classes;
  return d;
}

// Number of a block's n rows that go to the test set: round(f * n), at least one when f > 0 and
// n >= 2, and never all of them.
std::int64_t test_rows_of(std::int64_t n, double f) {
  if (f <= 0.0 || n < 2) return 0;
  const auto t = static_cast<std::int64_t>(std::floor(f * static_cast<double>(n) + 0.5));
  return std::clamp<std::int64_t>(t, 1, n - 1);
}

// Moves `n_test` rows of `block` (chosen by the client's split stream) into test and the rest, in
// their original order, into train.
void split_block(const Dataset& block, double test_fraction, std::uint64_t seed,
                 std::uint32_t client, Dataset& train, Dataset& test) {
  const std::int64_t n_test = test_rows_of(block.rows, test_fraction);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(block.rows));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  Rng rng(seed, 0, client, Purpose::kDataSplit);
  rng.shuffle(std::span<std::int64_t>(perm));
  std::vector<char> is_test(perm.size(), 0);
  for (std::int64_t j = 0; j < n_test; ++j) is_test[static_cast<std::size_t>(perm[j])] = 1;
  for (std::int64_t i = 0; i < block.rows; ++i) {
    append_row(is_test[static_cast<std::size_t>(i)] ? test : train, block, i);
  }
}

}  // namespace

TrainTest split_train_test(const Dataset& all, double test_fraction, std::uint64_t seed) {
  check_fraction(test_fraction, "split_train_test");
  const auto n = static_cast<std::size_t>(all.rows);
  require_usage(all.rows >= 0 && all.x.size() == n * static_cast<std::size_t>(all.dim) &&
                    (all.is_regression() ? all.targets.size() : all.labels.size()) == n,
                "split_train_test: dataset sizes are inconsistent");
  TrainTest tt{empty_like(all), empty_like(all)};
  split_block(all, test_fraction, seed, kGlobalClient, tt.train, tt.test);
  return tt;
}

SyntheticResult synthetic_linear(int num_clients, std::int64_t samples_per_client, std::int64_t dim,
                                 double noise, double test_fraction, std::uint64_t seed) {
  const char* who = "synthetic_linear";
  require_usage(num_clients >= 1, std::string(who) + ": num_clients must be at least 1");
  require_usage(samples_per_client >= 1,
                std::string(who) + ": samples_per_client must be at least 1");
  require_usage(dim >= 1, std::string(who) + ": dim must be at least 1");
  require_usage(std::isfinite(noise) && noise >= 0.0,
                std::string(who) + ": noise must be a finite number >= 0");
  check_fraction(test_fraction, who);

  // Test rows per client so that test_fraction of all rows are test rows.
  const auto test_per_client = static_cast<std::int64_t>(std::floor(
      test_fraction / (1.0 - test_fraction) * static_cast<double>(samples_per_client) + 0.5));

  // Every row is held as dim floats and a target, besides w* and one row in double
  // (Note [Input sizes]).
  const std::string what = std::string(who) + " (" + std::to_string(num_clients) + " clients x " +
                           std::to_string(samples_per_client + test_per_client) + " rows x " +
                           std::to_string(dim) + " features)";
  const std::int64_t rows =
      checked_mul(num_clients, checked_add(samples_per_client, test_per_client, what), what);
  require_memory(checked_add(checked_mul(rows, checked_mul(checked_add(dim, 1, what), 4, what), what),
                             checked_mul(dim, 16, what), what),
                 what);

  std::vector<double> w(static_cast<std::size_t>(dim));
  Rng global(seed, 0, kGlobalClient, Purpose::kDataGeneration);
  for (double& v : w) v = global.normal();

  SyntheticResult res;
  for (Dataset* d : {&res.data.train, &res.data.test}) d->dim = dim;
  res.partition.resize(static_cast<std::size_t>(num_clients));
  std::vector<double> x(static_cast<std::size_t>(dim));
  for (int k = 0; k < num_clients; ++k) {
    Rng rng(seed, 0, static_cast<std::uint32_t>(k), Purpose::kDataGeneration);
    for (std::int64_t i = 0; i < samples_per_client + test_per_client; ++i) {
      Dataset& dst = i < samples_per_client ? res.data.train : res.data.test;
      if (i < samples_per_client) res.partition[static_cast<std::size_t>(k)].push_back(dst.rows);
      double t = 0.0;
      for (std::int64_t j = 0; j < dim; ++j) {
        const auto xf = static_cast<float>(rng.normal());
        dst.x.push_back(xf);
        t += static_cast<double>(xf) * w[static_cast<std::size_t>(j)];
      }
      dst.targets.push_back(static_cast<float>(t + noise * rng.normal()));
      ++dst.rows;
    }
  }
  return res;
}

SyntheticResult synthetic_fedprox(int num_clients, double alpha, double beta, std::int64_t dim,
                                  int num_classes, std::int64_t min_samples, double test_fraction,
                                  std::uint64_t seed) {
  const char* who = "synthetic_fedprox";
  require_usage(num_clients >= 1, std::string(who) + ": num_clients must be at least 1");
  require_usage(std::isfinite(alpha) && alpha >= 0.0 && std::isfinite(beta) && beta >= 0.0,
                std::string(who) + ": alpha and beta must be finite numbers >= 0");
  require_usage(dim >= 1, std::string(who) + ": dim must be at least 1");
  require_usage(num_classes >= 2, std::string(who) + ": num_classes must be at least 2");
  require_usage(min_samples >= 1, std::string(who) + ": min_samples must be at least 1");
  check_fraction(test_fraction, who);

  // At least min_samples rows of dim floats and a label per client, and the c x d weights of a
  // client's model in double (Note [Input sizes]).
  const std::string what = std::string(who) + " (" + std::to_string(num_clients) +
                           " clients x at least " + std::to_string(min_samples) + " rows x " +
                           std::to_string(dim) + " features, " + std::to_string(num_classes) +
                           " classes)";
  const std::int64_t rows = checked_mul(num_clients, min_samples, what);
  require_memory(checked_add(checked_mul(rows, checked_mul(checked_add(dim, 1, what), 4, what), what),
                             checked_mul(checked_mul(num_classes, dim, what), 8, what), what),
                 what);

  const auto d = static_cast<std::size_t>(dim);
  const auto c = static_cast<std::size_t>(num_classes);
  std::vector<double> sigma_sd(d);
  for (std::size_t j = 0; j < d; ++j) {
    sigma_sd[j] = std::sqrt(std::pow(static_cast<double>(j + 1), -1.2));
  }

  SyntheticResult res;
  for (Dataset* ds : {&res.data.train, &res.data.test}) {
    ds->dim = dim;
    ds->num_classes = num_classes;
  }
  res.partition.resize(static_cast<std::size_t>(num_clients));
  std::vector<double> v(d), w(c * d), b(c);
  for (int k = 0; k < num_clients; ++k) {
    const auto client = static_cast<std::uint32_t>(k);
    Rng rng(seed, 0, client, Purpose::kDataGeneration);
    const double lognormal = std::exp(rng.normal(4.0, 2.0));
    const std::int64_t n =
        min_samples + static_cast<std::int64_t>(
                          std::min(std::floor(lognormal), static_cast<double>(kFedproxMaxExtra)));
    const double u = rng.normal(0.0, alpha);
    const double big_b = rng.normal(0.0, beta);
    for (double& vj : v) vj = rng.normal(big_b, 1.0);
    for (double& wij : w) wij = rng.normal(u, 1.0);
    for (double& bi : b) bi = rng.normal(u, 1.0);

    Dataset block;
    block.dim = dim;
    block.num_classes = num_classes;
    block.rows = n;
    block.x.resize(static_cast<std::size_t>(n) * d);
    block.labels.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      float* x = block.x.data() + static_cast<std::size_t>(i) * d;
      for (std::size_t j = 0; j < d; ++j) {
        x[j] = static_cast<float>(v[j] + sigma_sd[j] * rng.normal());
      }
      std::int32_t best = 0;
      double best_logit = 0.0;
      for (std::size_t cls = 0; cls < c; ++cls) {
        double logit = b[cls];
        for (std::size_t j = 0; j < d; ++j) logit += w[cls * d + j] * static_cast<double>(x[j]);
        if (cls == 0 || logit > best_logit) {
          best_logit = logit;
          best = static_cast<std::int32_t>(cls);
        }
      }
      block.labels[static_cast<std::size_t>(i)] = best;
    }

    const std::int64_t first = res.data.train.rows;
    split_block(block, test_fraction, seed, client, res.data.train, res.data.test);
    auto& owned = res.partition[static_cast<std::size_t>(k)];
    owned.resize(static_cast<std::size_t>(res.data.train.rows - first));
    std::iota(owned.begin(), owned.end(), first);
  }
  return res;
}

SourceRegistration synthetic_linear_registration() {
  return {"synthetic_linear",
          "linear regression t = w*.x + noise, x ~ N(0, I)",
          {opt_int("dim", 20, "features", 1),
           opt_int("samples_per_client", 100, "rows per client", 1),
           opt_float("noise", 0.1, "standard deviation of the label noise", 0),
           opt_float("test_fraction", 0.2, "held-out share", 0, 0.99, true)},
          [](const Config& cfg) {
            auto r = synthetic_linear(static_cast<int>(cfg.get_int("clients.num_clients")),
                                      cfg.get_int("data.samples_per_client"),
                                      cfg.get_int("data.dim"), cfg.get_float("data.noise"),
                                      cfg.get_float("data.test_fraction"),
                                      static_cast<std::uint64_t>(cfg.get_int("seed")));
            return LoadedData{std::move(r.data), std::move(r.partition)};
          }};
}

SourceRegistration synthetic_fedprox_registration() {
  return {"synthetic_fedprox",
          "synthetic(alpha, beta) logistic-regression clients of the FedProx paper",
          {opt_float("alpha", 1.0, "model heterogeneity across clients", 0),
           opt_float("beta", 1.0, "feature heterogeneity across clients", 0),
           opt_int("dim", 60, "features", 1), opt_int("classes", 10, "classes", 2),
           opt_int("min_samples", 50, "minimum rows per client", 2),
           opt_float("test_fraction", 0.2, "held-out share of each client's rows", 0, 0.99,
                     true)},
          [](const Config& cfg) {
            auto r = synthetic_fedprox(
                static_cast<int>(cfg.get_int("clients.num_clients")), cfg.get_float("data.alpha"),
                cfg.get_float("data.beta"), cfg.get_int("data.dim"),
                static_cast<int>(cfg.get_int("data.classes")), cfg.get_int("data.min_samples"),
                cfg.get_float("data.test_fraction"), static_cast<std::uint64_t>(cfg.get_int("seed")));
            return LoadedData{std::move(r.data), std::move(r.partition)};
          }};
}

}  // namespace cohort::data
