#include "algo/problem.h"

#include <algorithm>

#include <fmt/format.h>

#include "algo/quadratic.h"
#include "core/errors.h"
#include "data/loaders.h"
#include "data/partition.h"

namespace cohort::algo {

std::int64_t Problem::num_params() const {
  const auto& l = layers();
  return l.empty() ? 0 : l.back().offset + l.back().size();
}

void Problem::set_label_flip(const std::vector<int>&) {
  throw UsageError("attack.name = labelflip needs a classification problem (class labels to flip)");
}

std::vector<std::int64_t> Problem::sample_counts() const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(num_clients()));
  for (int c = 0; c < num_clients(); ++c) out[c] = client_samples(c);
  return out;
}

namespace {

// data.partition.name = pool: client c's sample i is training row
// Rng(seed, i, c, kPartition).below(rows), drawn when it is used (Note [Population scale] in
// runner.cpp). clients == 0: the partition is stored instead.
struct PoolPartition {
  int clients = 0;
  std::int64_t samples = 0;
  std::uint64_t seed = 0;
};

// Clients that hold rows of a dataset and train a model on them.
class DatasetProblem final : public Problem {
 public:
  DatasetProblem(data::TrainTest data, data::Partition partition,
                 std::unique_ptr<model::Model> model, std::int64_t eval_chunk, std::string what,
                 PoolPartition pool = {})
      : data_(std::move(data)), partition_(std::move(partition)), model_(std::move(model)),
        eval_chunk_(eval_chunk), what_(std::move(what)), pool_(pool) {}

  std::string description() const override {
    return fmt::format("{}: {} train / {} test rows, dim {}, {} clients; model {} ({} params)",
                       what_, data_.train.rows, data_.test.rows, data_.train.dim,
                       num_clients(), model_->name(), model_->num_params());
  }
  int num_clients() const override {
    return pool_.clients > 0 ? pool_.clients : static_cast<int>(partition_.size());
  }
  const std::vector<LayerView>& layers() const override { return model_->layers(); }
  std::int64_t client_samples(int c) const override {
    return pool_.clients > 0 ? pool_.samples : static_cast<std::int64_t>(partition_[c].size());
  }
  // Training row of client c's sample at position `pos`.
  std::int64_t row_of(int c, std::int64_t pos) const {
    if (pool_.clients == 0) return partition_[static_cast<std::size_t>(c)][static_cast<std::size_t>(pos)];
    Rng rng(pool_.seed, static_cast<std::uint32_t>(pos), static_cast<std::uint32_t>(c),
            Purpose::kPartition);
    return static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(data_.train.rows)));
  }
  void init(float* x, std::uint64_t seed) const override {
    Rng rng(seed, 0, kGlobalClient, Purpose::kModelInit);
    model_->init(x, rng);
  }

  double loss_grad(int c, const float* x, std::span<const std::int64_t> positions, float* grad,
                   Rng&) override {
    const auto& ds = data_.train;
    const std::int64_t b = static_cast<std::int64_t>(positions.size());
    batch_x_.resize(static_cast<std::size_t>(b * ds.dim));
    batch_rows_.resize(static_cast<std::size_t>(b));
    for (std::int64_t i = 0; i < b; ++i) {
      const std::int64_t r = row_of(c, positions[i]);
      batch_rows_[static_cast<std::size_t>(i)] = r;
      std::copy_n(ds.row(r), ds.dim, batch_x_.data() + i * ds.dim);
    }
    const auto& rows = batch_rows_;
    model::Batch batch{batch_x_.data(), b, ds.dim};
    if (ds.is_regression()) {
      batch_t_.resize(static_cast<std::size_t>(b));
      for (std::int64_t i = 0; i < b; ++i) batch_t_[i] = ds.targets[rows[i]];
      batch.targets = batch_t_.data();
    } else {
      batch_y_.resize(static_cast<std::size_t>(b));
      const bool flip = !flipped_.empty() && flipped_[static_cast<std::size_t>(c)];
      for (std::int64_t i = 0; i < b; ++i) {
        const std::int32_t y = ds.labels[rows[i]];
        batch_y_[i] = flip ? ds.num_classes - 1 - y : y;
      }
      batch.labels = batch_y_.data();
    }
    return model_->loss_grad(x, batch, grad);
  }

  std::int64_t num_eval_chunks() const override {
    return (data_.test.rows + eval_chunk_ - 1) / eval_chunk_;
  }
  EvalSums evaluate_chunk(const float* x, std::int64_t chunk) override {
    const auto& ds = data_.test;
    const std::int64_t begin = chunk * eval_chunk_;
    const std::int64_t n = std::min(eval_chunk_, ds.rows - begin);
    model::Batch batch{ds.row(begin), n, ds.dim};
    if (ds.is_regression())
      batch.targets = ds.targets.data() + begin;
    else
      batch.labels = ds.labels.data() + begin;
    EvalSums s;
    s.count = n;
    model_->evaluate(x, batch, &s.loss_sum, &s.correct);
    return s;
  }
  bool has_accuracy() const override { return !data_.test.is_regression(); }

  void set_label_flip(const std::vector<int>& clients) override {
    if (data_.train.is_regression()) Problem::set_label_flip(clients);
    flipped_.assign(static_cast<std::size_t>(num_clients()), 0);
    for (int c : clients) flipped_[static_cast<std::size_t>(c)] = 1;
  }

  double server_loss(const float* y, std::uint64_t seed, std::uint32_t round, int batch) override {
    const auto& ds = data_.test;
    const std::int64_t b = std::min<std::int64_t>(batch, ds.rows);
    Rng rng(seed, round, kGlobalClient, Purpose::kAggregation);
    val_x_.resize(static_cast<std::size_t>(b * ds.dim));
    val_y_.resize(static_cast<std::size_t>(b));
    val_t_.resize(static_cast<std::size_t>(b));
    for (std::int64_t i = 0; i < b; ++i) {
      const auto r = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(ds.rows)));
      std::copy_n(ds.row(r), ds.dim, val_x_.data() + i * ds.dim);
      if (ds.is_regression())
        val_t_[i] = ds.targets[r];
      else
        val_y_[i] = ds.labels[r];
    }
    model::Batch batch_view{val_x_.data(), b, ds.dim};
    if (ds.is_regression())
      batch_view.targets = val_t_.data();
    else
      batch_view.labels = val_y_.data();
    return model_->loss_grad(y, batch_view, nullptr);
  }

 private:
  data::TrainTest data_;
  data::Partition partition_;
  std::unique_ptr<model::Model> model_;
  std::int64_t eval_chunk_;
  std::string what_;
  std::vector<float> batch_x_, batch_t_, val_x_, val_t_;
  std::vector<std::int32_t> batch_y_, val_y_;
  std::vector<char> flipped_;  // labelflip attackers
  PoolPartition pool_;
  std::vector<std::int64_t> batch_rows_;
};

data::Partition make_partition(const Config& cfg, const data::Dataset& train,
                               data::Partition natural) {
  const std::string name = cfg.get_string("data.partition.name");
  const int n = static_cast<int>(cfg.get_int("clients.num_clients"));
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  const bool has_natural = !natural.empty();
  if (name == "natural" || (name == "auto" && has_natural)) {
    require_usage(has_natural,
                  "data.partition.name = natural needs a synthetic dataset; for '" +
                      cfg.get_string("data.name") + "' use iid, dirichlet or shards");
    return natural;
  }
  require_usage(n <= train.rows,
                fmt::format("clients.num_clients = {} exceeds the {} training rows (clients "
                            "may share rows with data.partition.name = pool)",
                            n, train.rows));
  if (name == "iid" || name == "auto") return data::partition_iid(train.rows, n, seed);
  require_usage(!train.is_regression(),
                "data.partition.name = " + name + " needs class labels; regression data allows "
                "iid or natural");
  if (name == "dirichlet")
    return data::partition_dirichlet(train.labels, train.num_classes, n,
                                     cfg.get_float("data.partition.alpha"), seed);
  return data::partition_shards(train.labels, n,
                                static_cast<int>(cfg.get_int("data.partition.shards_per_client")),
                                seed);
}

std::unique_ptr<model::Model> make_model(const Config& cfg, const data::Dataset& train) {
  std::string name = cfg.get_string("model.name");
  if (name == "auto") name = train.is_regression() ? "linear" : "logreg";
  require_usage(name != "quadratic", "model.name = quadratic needs data.name = quadratic");
  if (name == "linear") {
    require_usage(train.is_regression(),
                  "model.name = linear is least-squares regression; this data has class labels "
                  "(use logreg or mlp, or data.task = regression for LIBSVM files)");
    const bool explicit_linear = cfg.get_string("model.name") == "linear";  // not "auto"
    return model::make_linear(
        train.dim, explicit_linear ? cfg.get_bool("model.bias") : true,
        explicit_linear ? static_cast<float>(cfg.get_float("model.init")) : 0.0f);
  }
  require_usage(!train.is_regression(),
                "model.name = " + name + " needs class labels; regression data allows linear");
  if (name == "logreg") return model::make_logreg(train.dim, train.num_classes);
  std::vector<int> hidden;
  for (long long h : cfg.get_int_list("model.hidden")) hidden.push_back(static_cast<int>(h));
  require_usage(!hidden.empty(), "model.hidden must list at least one layer size, e.g. [200]");
  const std::string act = cfg.get_string("model.activation");
  const auto a = act == "relu"   ? model::Activation::kRelu
                 : act == "tanh" ? model::Activation::kTanh
                                 : model::Activation::kSigmoid;
  return model::make_mlp(train.dim, train.num_classes, hidden, a);
}

// data.name = inline: rows written in the config.
data::Dataset inline_dataset(const Config& cfg) {
  const std::vector<double> x = cfg.get_float_list("data.x"), y = cfg.get_float_list("data.y");
  const std::int64_t dim = cfg.get_int("data.dim");
  require_usage(!y.empty(), "data.y is empty: data.name = inline needs at least one row");
  require_usage(static_cast<std::int64_t>(x.size()) == dim * static_cast<std::int64_t>(y.size()),
                fmt::format("data.x has {} values; expected rows * dim = {} * {} = {}", x.size(),
                            y.size(), dim, y.size() * dim));
  data::Dataset ds;
  ds.rows = static_cast<std::int64_t>(y.size());
  ds.dim = dim;
  ds.x.assign(x.begin(), x.end());
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

std::unique_ptr<Problem> make_problem(const Config& cfg) {
  const std::string name = cfg.get_string("data.name");
  const int n = static_cast<int>(cfg.get_int("clients.num_clients"));
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  if (name == "quadratic") {
    const std::string m = cfg.get_string("model.name");
    require_usage(m == "auto" || m == "quadratic",
                  "data.name = quadratic defines its own objective: model.name must be auto or "
                  "quadratic, not " + m);
    const std::string p = cfg.get_string("data.partition.name");
    require_usage(p == "auto" || p == "natural",
                  "data.name = quadratic has one objective per client: data.partition.name must "
                  "be auto or natural, not " + p);
    return QuadraticProblem::from_config(cfg);
  }
  require_usage(cfg.get_string("model.name") != "quadratic",
                "model.name = quadratic needs data.name = quadratic");
  data::TrainTest tt;
  data::Partition natural;
  if (name == "fashion_mnist") {
    tt = data::load_fashion_mnist(cfg.get_string("data.path"));
  } else if (name == "libsvm") {
    const std::string path = cfg.get_string("data.path");
    require_usage(!path.empty(), "data.path is required for data.name = libsvm");
    const bool regression = cfg.get_string("data.task") == "regression";
    const std::int64_t dim = cfg.get_int("data.dim");
    data::Dataset all = data::read_libsvm(path, dim, regression);
    const std::string test_path = cfg.get_string("data.test_path");
    if (test_path.empty()) {
      tt = data::split_train_test(all, cfg.get_float("data.test_fraction"), seed);
    } else {
      tt.train = std::move(all);
      tt.test = data::read_libsvm(test_path, tt.train.dim, regression);
      require_usage(regression || tt.test.num_classes <= tt.train.num_classes,
                    "data.test_path has more classes than data.path");
      tt.test.num_classes = tt.train.num_classes;
    }
  } else if (name == "inline") {
    tt.train = inline_dataset(cfg);
    tt.test = tt.train;
    if (cfg.get_string("data.partition.name") != "pool") {  // pool clients share the rows
      require_usage(tt.train.rows >= n,
                    fmt::format("data.name = inline has {} rows but clients.num_clients = {}: "
                                "every client needs at least one row (or use "
                                "data.partition.name = pool)",
                                tt.train.rows, n));
      natural.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < tt.train.rows; ++i) natural[i % n].push_back(i);
    }
  } else if (name == "synthetic_linear") {
    auto r = data::synthetic_linear(n, cfg.get_int("data.samples_per_client"),
                                    cfg.get_int("data.dim"), cfg.get_float("data.noise"),
                                    cfg.get_float("data.test_fraction"), seed);
    tt = std::move(r.data);
    natural = std::move(r.partition);
  } else {  // synthetic_fedprox
    auto r = data::synthetic_fedprox(n, cfg.get_float("data.alpha"), cfg.get_float("data.beta"),
                                     cfg.get_int("data.dim"),
                                     static_cast<int>(cfg.get_int("data.classes")),
                                     cfg.get_int("data.min_samples"),
                                     cfg.get_float("data.test_fraction"), seed);
    tt = std::move(r.data);
    natural = std::move(r.partition);
  }
  // Test metrics are means over the test rows: without any, a run would report NaN.
  require_usage(tt.test.rows > 0,
                fmt::format("data.name = {} gives an empty test set ({} training rows): "
                            "evaluation needs at least one test row{}",
                            name, tt.train.rows,
                            name == "libsvm" ? "; set data.test_path, or give data.path 2 rows "
                                               "or more"
                            : name == "synthetic_linear"
                                ? "; raise data.test_fraction or data.samples_per_client so "
                                  "that each client gets a test row"
                                : ""));
  auto model = make_model(cfg, tt.train);
  if (cfg.get_string("data.partition.name") == "pool") {
    const PoolPartition pool{static_cast<int>(cfg.get_int("clients.num_clients")),
                             cfg.get_int("data.partition.samples_per_client"),
                             static_cast<std::uint64_t>(cfg.get_int("seed"))};
    return std::make_unique<DatasetProblem>(std::move(tt), data::Partition{}, std::move(model),
                                            cfg.get_int("eval.chunk"), name, pool);
  }
  auto partition = make_partition(cfg, tt.train, std::move(natural));
  for (std::size_t c = 0; c < partition.size(); ++c)
    require_usage(!partition[c].empty(),
                  fmt::format("partition left client {} without samples; use fewer clients or a "
                              "larger alpha",
                              c));
  return std::make_unique<DatasetProblem>(std::move(tt), std::move(partition), std::move(model),
                                          cfg.get_int("eval.chunk"), name);
}

}  // namespace cohort::algo
