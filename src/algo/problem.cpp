#include "algo/problem.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include "algo/quadratic.h"
#include "attack/attack.h"
#include "core/errors.h"
#include "core/worker_pool.h"
#include "data/loaders.h"
#include "data/partition.h"
#include "model/layer_model.h"
#include "model/linear.h"
#include "model/logreg.h"
#include "model/mlp.h"

namespace cohort::algo {

std::int64_t Problem::num_params() const {
  const auto& l = layers();
  return l.empty() ? 0 : l.back().offset + l.back().size();
}

double Problem::clipped_loss_grad(int, const float*, std::span<const std::int64_t>, double, double,
                                  float*, Rng&) {
  throw std::logic_error("per-example clipping on a problem without per-sample losses");
}

std::vector<float> Problem::sample_input(int, std::int64_t) {
  throw std::logic_error("sample_input on a problem without samples");
}
double Problem::sample_loss(int, std::int64_t, const float*) {
  throw std::logic_error("sample_loss on a problem without samples");
}
double Problem::test_loss(std::int64_t, const float*) {
  throw std::logic_error("test_loss on a problem without samples");
}

void Problem::set_label_flip(const std::vector<int>&) {
  throw UsageError("attack.name = labelflip needs a classification problem (class labels to flip)");
}

EvalSums Problem::evaluate_client(int, const float*) {
  throw std::logic_error("evaluate_client on a problem without client test sets");
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

// data.partition.byzantine_data (Note [Byzantine data] in data/partition.cpp): the Byzantine set
// the run will use, when their share differs from the honest clients' (empty otherwise), checked
// against the attack and the options that need every client's rows.
struct ByzantineData {
  std::vector<int> ids;  // sorted; empty for share same or no attack
  std::string share;
  bool holds_none(int c) const {
    return share == "none" && std::binary_search(ids.begin(), ids.end(), c);
  }
};

ByzantineData byzantine_data(const Config& cfg) {
  ByzantineData b;
  b.share = cfg.get_string("data.partition.byzantine_data");
  if (b.share == "same") return b;
  const auto o = attack::attack_options(cfg);
  const int n = static_cast<int>(cfg.get_int("clients.num_clients"));
  b.ids = attack::byzantine_clients(static_cast<std::uint64_t>(cfg.get_int("seed")), n, o);
  if (b.ids.empty()) return b;  // no attack: every client is honest and the key has no effect
  require_usage(static_cast<int>(b.ids.size()) < n,
                fmt::format("data.partition.byzantine_data = {}: all {} clients are Byzantine, so "
                            "no honest client would hold the data; lower attack.count or "
                            "attack.fraction",
                            b.share, n));
  if (b.share == "none") {
    const auto a = attack::make_attack(o);
    require_usage(a->omniscient() || a->drops(),
                  "data.partition.byzantine_data = none leaves the Byzantine clients no rows, "
                  "but attack.name = " + o.name + " trains on its clients' rows; use "
                  "byzantine_data iid or same, or an attack whose clients do not train (alie, "
                  "ipm, mimic, minmax, minsum, dropout)");
    require_usage(cfg.get_float("data.client_test_fraction") == 0,
                  "data.partition.byzantine_data = none leaves the Byzantine clients no rows to "
                  "hold out for data.client_test_fraction; set it to 0 or use byzantine_data iid");
    require_usage(!(cfg.get_string("aggregator.name") == "mean" &&
                    cfg.get_bool("aggregator.weighted")),
                  "data.partition.byzantine_data = none gives the Byzantine clients no rows, so "
                  "aggregator.weighted = true would weigh their messages by 0; set it to false "
                  "or use byzantine_data iid");
  }
  return b;
}

// Note [Client test sets]
// data.client_test_fraction = f > 0 holds out part of every client's own rows as its local test
// set, so that a client's accuracy is measured on its own distribution (per-client evaluation,
// eval.clients, and personalization). Client c with n rows keeps m = round(f n), at least 1 and
// at most n - 1, for testing: the positions Rng(seed, 0, c, kClientTest).choose_sorted(n, m) of
// its sorted row list. The draw depends only on the seed, the client and the partition, never on
// the rank count or which rank holds the client; the remaining rows are the client's training
// samples (its weight in a weighted mean). A client with fewer than 2 rows cannot be split: a
// usage error names it.
data::Partition split_client_tests(data::Partition& train, double fraction, std::uint64_t seed) {
  data::Partition tests(train.size());
  for (std::size_t c = 0; c < train.size(); ++c) {
    auto& rows = train[c];
    const auto n = static_cast<std::int64_t>(rows.size());
    require_usage(n >= 2, fmt::format("data.client_test_fraction = {} needs at least 2 samples "
                                      "on every client (one to train, one to test); client {} "
                                      "has {}: use fewer clients or a partition that gives each more rows",
                                      fraction, c, n));
    const auto m = std::clamp<std::int64_t>(std::llround(fraction * static_cast<double>(n)), 1,
                                            n - 1);
    Rng rng(seed, 0, static_cast<std::uint32_t>(c), Purpose::kClientTest);
    const std::vector<int> pick = rng.choose_sorted(static_cast<int>(n), static_cast<int>(m));
    std::vector<std::int64_t> keep;
    keep.reserve(static_cast<std::size_t>(n - m));
    std::size_t next = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (next < pick.size() && pick[next] == i) {
        tests[c].push_back(rows[static_cast<std::size_t>(i)]);
        ++next;
      } else {
        keep.push_back(rows[static_cast<std::size_t>(i)]);
      }
    }
    rows = std::move(keep);
  }
  return tests;
}

// Clients that hold rows of a dataset and train a model on them.
class DatasetProblem final : public Problem {
 public:
  // make_model builds another instance of the model, for a further worker.
  using ModelFactory = std::function<std::unique_ptr<model::Model>(const data::Dataset&)>;
  DatasetProblem(data::TrainTest data, data::Partition partition,
                 std::unique_ptr<model::Model> model, ModelFactory make_model,
                 std::int64_t eval_chunk, std::string what, PoolPartition pool = {},
                 data::Partition client_tests = {})
      : data_(std::move(data)), partition_(std::move(partition)),
        client_tests_(std::move(client_tests)), model_(model.get()),
        make_model_(std::move(make_model)), eval_chunk_(eval_chunk), what_(std::move(what)),
        pool_(pool) {
    workers_.resize(1);
    workers_[0].model = std::move(model);
  }

  void set_workers(int n) override {
    const auto want = static_cast<std::size_t>(n);
    workers_.resize(std::max<std::size_t>(want, 1));
    for (auto& w : workers_)
      if (!w.model) w.model = make_model_(data_.train);
  }

  std::string description() const override {
    return fmt::format("{}: {} train / {} test rows, dim {}, {} clients; model {} ({} params)",
                       what_, data_.train.rows, data_.test.rows, data_.train.dim,
                       num_clients(), model_->name(), model_->num_params());
  }
  std::string model_summary() const override { return model_->summary(); }
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
  void init(float* x, std::uint64_t seed, std::uint32_t variant) const override {
    Rng rng(seed, variant, kGlobalClient, Purpose::kModelInit);
    model_->init(x, rng);
  }

  double client_loss(int c, const float* x) override {
    const std::int64_t n = client_samples(c);
    const bool flip = !flipped_.empty() && flipped_[static_cast<std::size_t>(c)];
    EvalSums s;
    for (std::int64_t begin = 0; begin < n; begin += eval_chunk_) {
      const std::int64_t b = std::min(eval_chunk_, n - begin);
      s = s + evaluate_rows(data_.train, x, b, [&](std::int64_t i) { return row_of(c, begin + i); },
                            flip);
    }
    return n > 0 ? s.loss_sum / static_cast<double>(n) : 0.0;
  }

  bool has_client_tests() const override { return !client_tests_.empty(); }
  std::int64_t client_test_samples(int c) const override {
    return client_tests_.empty() ? 0
                                 : static_cast<std::int64_t>(client_tests_[static_cast<std::size_t>(c)].size());
  }
  // The client's test rows are training-set rows it did not train on (Note [Client test sets]),
  // with their true labels (a labelflip attacker is measured on what it should have learnt).
  EvalSums evaluate_client(int c, const float* x) override {
    if (client_tests_.empty()) return Problem::evaluate_client(c, x);
    const auto& rows = client_tests_[static_cast<std::size_t>(c)];
    const auto n = static_cast<std::int64_t>(rows.size());
    EvalSums s;
    for (std::int64_t begin = 0; begin < n; begin += eval_chunk_) {
      const std::int64_t b = std::min(eval_chunk_, n - begin);
      s = s + evaluate_rows(data_.train, x, b,
                            [&](std::int64_t i) { return rows[static_cast<std::size_t>(begin + i)]; },
                            false);
    }
    return s;
  }

  // rng is the client's stream for this local work: the model's dropout masks come from it.
  double loss_grad(int c, const float* x, std::span<const std::int64_t> positions, float* grad,
                   Rng& rng) override {
    const model::Batch batch = gather(c, positions);
    return worker().model->loss_grad(x, batch, grad, &rng);
  }
  double clipped_loss_grad(int c, const float* x, std::span<const std::int64_t> positions,
                           double clip, double denominator, float* grad, Rng& rng) override {
    const model::Batch batch = gather(c, positions);
    return worker().model->clipped_loss_grad(x, batch, clip, denominator, grad, &rng);
  }

  std::vector<float> sample_input(int c, std::int64_t position) override {
    const auto& ds = data_.train;
    const float* row = ds.row(row_of(c, position));
    return std::vector<float>(row, row + ds.dim);
  }
  double sample_loss(int c, std::int64_t position, const float* x) override {
    const bool flip = !flipped_.empty() && flipped_[static_cast<std::size_t>(c)];
    return evaluate_rows(data_.train, x, 1, [&](std::int64_t) { return row_of(c, position); }, flip)
        .loss_sum;
  }
  std::int64_t test_rows() const override { return data_.test.rows; }
  double test_loss(std::int64_t row, const float* x) override {
    return evaluate_rows(data_.test, x, 1, [&](std::int64_t) { return row; }, false).loss_sum;
  }

  // Client c's samples at `positions`, copied into this worker's batch buffers.
  model::Batch gather(int c, std::span<const std::int64_t> positions) {
    const auto& ds = data_.train;
    Worker& w = worker();
    auto& batch_x_ = w.batch_x;
    auto& batch_rows_ = w.batch_rows;
    auto& batch_t_ = w.batch_t;
    auto& batch_y_ = w.batch_y;
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
    batch.shape = ds.shape();
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
    return batch;
  }

  std::int64_t num_eval_chunks() const override {
    return (data_.test.rows + eval_chunk_ - 1) / eval_chunk_;
  }
  EvalSums evaluate_chunk(const float* x, std::int64_t chunk) override {
    const auto& ds = data_.test;
    const std::int64_t begin = chunk * eval_chunk_;
    const std::int64_t n = std::min(eval_chunk_, ds.rows - begin);
    model::Batch batch{ds.row(begin), n, ds.dim};
    batch.shape = ds.shape();
    if (ds.is_regression())
      batch.targets = ds.targets.data() + begin;
    else
      batch.labels = ds.labels.data() + begin;
    EvalSums s;
    s.count = n;
    worker().model->evaluate(x, batch, &s.loss_sum, &s.correct);
    return s;
  }
  bool has_accuracy() const override { return !data_.test.is_regression(); }

  // An evaluation pass over b rows of ds, row i being row_at(i), on this worker's model.
  template <class RowAt>
  EvalSums evaluate_rows(const data::Dataset& ds, const float* x, std::int64_t b, RowAt row_at,
                         bool flip) {
    Worker& w = worker();
    w.batch_x.resize(static_cast<std::size_t>(b * ds.dim));
    for (std::int64_t i = 0; i < b; ++i)
      std::copy_n(ds.row(row_at(i)), ds.dim, w.batch_x.data() + i * ds.dim);
    model::Batch batch{w.batch_x.data(), b, ds.dim};
    batch.shape = ds.shape();
    if (ds.is_regression()) {
      w.batch_t.resize(static_cast<std::size_t>(b));
      for (std::int64_t i = 0; i < b; ++i) w.batch_t[i] = ds.targets[row_at(i)];
      batch.targets = w.batch_t.data();
    } else {
      w.batch_y.resize(static_cast<std::size_t>(b));
      for (std::int64_t i = 0; i < b; ++i) {
        const std::int32_t y = ds.labels[row_at(i)];
        w.batch_y[i] = flip ? ds.num_classes - 1 - y : y;
      }
      batch.labels = w.batch_y.data();
    }
    EvalSums s;
    s.count = b;
    w.model->evaluate(x, batch, &s.loss_sum, &s.correct);
    return s;
  }

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
    batch_view.shape = ds.shape();
    if (ds.is_regression())
      batch_view.targets = val_t_.data();
    else
      batch_view.labels = val_y_.data();
    return model_->loss_grad(y, batch_view, nullptr);  // an evaluation pass: dropout off
  }

 private:
  // What one worker's loss_grad and evaluate_chunk write: a model instance (its scratch) and
  // the minibatch copied out of the training set.
  struct Worker {
    std::unique_ptr<model::Model> model;
    std::vector<float> batch_x, batch_t;
    std::vector<std::int32_t> batch_y;
    std::vector<std::int64_t> batch_rows;
  };
  Worker& worker() { return workers_.at(static_cast<std::size_t>(WorkerPool::current_worker())); }

  data::TrainTest data_;
  data::Partition partition_;
  data::Partition client_tests_;  // Note [Client test sets]; empty: none
  model::Model* model_;  // worker 0's: layers, init, description, server_loss
  ModelFactory make_model_;
  std::vector<Worker> workers_;
  std::int64_t eval_chunk_;
  std::string what_;
  std::vector<float> val_x_, val_t_;
  std::vector<std::int32_t> val_y_;
  std::vector<char> flipped_;  // labelflip attackers
  PoolPartition pool_;
};

// The model.name the config names: its check of the training data, then the model.
std::unique_ptr<model::Model> make_model(const Config& cfg, const data::Dataset& train) {
  const std::string name = cfg.get_string("model.name");
  const auto* r = find_registration(models(), name);
  if (r == nullptr || !r->make) throw std::logic_error("model " + name + " is not built from data");
  return r->make(cfg, train);
}

// A dataset source's problem: its data, a model on it and the clients' rows.
ProblemRegistration dataset_problem(data::SourceRegistration source) {
  const std::string name = source.name;
  auto load = std::move(source.make);
  return {name, std::move(source.help), std::move(source.options),
          [load, name](const Config& cfg) -> std::unique_ptr<Problem> {
            require_usage(cfg.get_string("model.name") != "quadratic",
                          "model.name = quadratic needs data.name = quadratic");
            data::LoadedData loaded = load(cfg);
            data::TrainTest& tt = loaded.data;
            // Test metrics are means over the test rows: without any, a run would report NaN.
            require_usage(
                tt.test.rows > 0,
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
            auto more = [cfg](const data::Dataset& train) { return make_model(cfg, train); };
            const double test_fraction = cfg.get_float("data.client_test_fraction");
            require_usage(test_fraction < 1,
                          "data.client_test_fraction = 1 leaves the clients nothing to train "
                          "on: allowed values are in [0, 1)");
            const int num_clients = static_cast<int>(cfg.get_int("clients.num_clients"));
            if (cfg.get_string("data.partition.name") == "pool") {
              require_usage(cfg.get_string("data.partition.byzantine_data") == "same",
                            "data.partition.byzantine_data = " +
                                cfg.get_string("data.partition.byzantine_data") +
                                " needs stored rows: data.partition.name = pool draws each "
                                "client's rows as it trains; use iid, dirichlet or shards");
              require_usage(test_fraction == 0,
                            "data.client_test_fraction needs each client's rows: data.partition."
                            "name = pool draws them as the client trains; use another partition");
              const PoolPartition pool{static_cast<int>(cfg.get_int("clients.num_clients")),
                                       cfg.get_int("data.partition.samples_per_client"),
                                       static_cast<std::uint64_t>(cfg.get_int("seed"))};
              return std::make_unique<DatasetProblem>(std::move(tt), data::Partition{},
                                                      std::move(model), more,
                                                      cfg.get_int("eval.chunk"), name, pool);
            }
            const ByzantineData byz = byzantine_data(cfg);
            auto partition = data::make_partition(cfg, tt.train, std::move(loaded.natural),
                                                  num_clients - static_cast<int>(byz.ids.size()));
            if (!byz.ids.empty())
              partition = data::place_byzantine(std::move(partition), byz.ids, num_clients,
                                                byz.share, tt.train.rows,
                                                static_cast<std::uint64_t>(cfg.get_int("seed")));
            for (std::size_t c = 0; c < partition.size(); ++c)
              require_usage(!partition[c].empty() || byz.holds_none(static_cast<int>(c)),
                            fmt::format("partition left client {} without samples; use fewer "
                                        "clients or a larger alpha",
                                        c));
            data::Partition tests;
            if (test_fraction > 0)
              tests = split_client_tests(partition, test_fraction,
                                         static_cast<std::uint64_t>(cfg.get_int("seed")));
            return std::make_unique<DatasetProblem>(std::move(tt), std::move(partition),
                                                    std::move(model), more,
                                                    cfg.get_int("eval.chunk"), name,
                                                    PoolPartition{}, std::move(tests));
          }};
}

}  // namespace

// The registries of the data and model slots (Note [Registration]). Their entries are declared
// with each source and model; the quadratic ones live with QuadraticProblem.
const std::vector<ProblemRegistration>& data_sources() {
  static const std::vector<ProblemRegistration> list = {
      dataset_problem(data::fashion_mnist_registration()),
      dataset_problem(data::libsvm_registration()),
      dataset_problem(data::synthetic_linear_registration()),
      dataset_problem(data::synthetic_fedprox_registration()),
      dataset_problem(data::inline_registration()),
      quadratic_registration(),
  };
  return list;
}

Section data_section() {
  Section s = slot_section("data", "Training and test data.", "fashion_mnist", data_sources());
  s.options = {opt_float("client_test_fraction", 0.0,
                         "share of every client's own samples held out as its local test set "
                         "(per-client evaluation, eval.clients; Note [Client test sets]); 0: none",
                         0, 1)};
  s.children = {data::partition_section()};
  return s;
}

const std::vector<model::ModelRegistration>& models() {
  static const std::vector<model::ModelRegistration> list = {
      {"auto",
       "quadratic for quadratic data, linear for regression, logreg otherwise",
       {},
       [](const Config&, const data::Dataset& train) {
         return train.is_regression() ? model::make_linear(train.dim)
                                      : model::make_logreg(train.dim, train.num_classes);
       }},
      model::linear_registration(),
      model::logreg_registration(),
      model::mlp_registration(),
      model::cnn_mnist_registration(),
      model::lenet5_registration(),
      model::resnet8_registration(),
      model::resnet20_registration(),
      model::layers_registration(),
      quadratic_model_registration(),
  };
  return list;
}

Section model_section() {
  return slot_section("model",
                      "The model trained by every client (one flat float32 parameter buffer).",
                      "auto", models());
}

std::unique_ptr<Problem> make_problem(const Config& cfg) {
  const std::string name = cfg.get_string("data.name");
  const auto* r = find_registration(data_sources(), name);
  if (r == nullptr) throw std::logic_error("unknown data source " + name);
  return r->make(cfg);
}

}  // namespace cohort::algo
