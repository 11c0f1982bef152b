// The run-config schema: every key, its type, default and meaning. Components are listed here
// once per category (explicit registration, STYLE.md §2); their factories live beside them and
// read exactly these keys.
#include <cmath>

#include "core/schema.h"
#include "data/loaders.h"

namespace cohort {
namespace {

Section data_section() {
  Section partition{"partition", "How training samples are assigned to clients."};
  partition.default_component = "auto";
  partition.components = {
      {"auto", "natural for synthetic data and quadratic clients, iid otherwise", {}},
      {"iid", "uniformly random, near-equal sizes", {}},
      {"dirichlet",
       "per-class proportions over clients drawn from Dirichlet(alpha) (classification only)",
       {opt_float("alpha", 0.5, "concentration; smaller means more label skew", 0, INFINITY,
                  true)}},
      {"shards",
       "label-sorted data cut into num_clients*shards_per_client shards, k per client",
       {opt_int("shards_per_client", 2, "shards (label blocks) per client", 1)}},
      {"natural", "the generator's own per-client blocks (synthetic data only)", {}},
  };
  Section data{"data", "Training and test data."};
  data.default_component = "fashion_mnist";
  data.components = {
      {"fashion_mnist",
       "Fashion-MNIST (Debian package dataset-fashion-mnist), 784 features, 10 classes",
       {opt_string("path", data::kFashionMnistDefaultDir, "directory with the four IDX .gz files")}},
      {"libsvm",
       "a LIBSVM text file of your own (dense or sparse)",
       {opt_string("path", "", "training file (required)"),
        opt_string("test_path", "", "test file; empty: hold out test_fraction of path"),
        opt_int("dim", 0, "number of features; 0: largest index seen"),
        opt_enum("task", "classification", {"classification", "regression"},
                 "labels remapped to 0..C-1, or kept as regression targets"),
        opt_float("test_fraction", 0.2, "held-out share when test_path is empty", 0, 0.99, true)}},
      {"synthetic_linear",
       "linear regression t = w*.x + noise, x ~ N(0, I)",
       {opt_int("dim", 20, "features", 1), opt_int("samples_per_client", 100, "rows per client", 1),
        opt_float("noise", 0.1, "standard deviation of the label noise", 0),
        opt_float("test_fraction", 0.2, "held-out share", 0, 0.99, true)}},
      {"synthetic_fedprox",
       "synthetic(alpha, beta) logistic-regression clients of the FedProx paper",
       {opt_float("alpha", 1.0, "model heterogeneity across clients", 0),
        opt_float("beta", 1.0, "feature heterogeneity across clients", 0),
        opt_int("dim", 60, "features", 1), opt_int("classes", 10, "classes", 2),
        opt_int("min_samples", 50, "minimum rows per client", 2),
        opt_float("test_fraction", 0.2, "held-out share of each client's rows", 0, 0.99, true)}},
      {"quadratic",
       "clients f_i(x) = 1/2 (x - a_i)' H_i (x - a_i), H_i diagonal; optimum known",
       {opt_int("dim", 10, "dimension of x", 1),
        opt_float_list("h", "[]",
                       "diagonals of H_i: num_clients values (one per client) or "
                       "num_clients*dim; empty: uniform in [h_min, h_max]"),
        opt_float_list("a", "[]",
                       "centres a_i: num_clients or num_clients*dim values; empty: N(0, 1)"),
        opt_float("h_min", 1.0, "smallest random curvature", 0, INFINITY, true),
        opt_float("h_max", 10.0, "largest random curvature", 0, INFINITY, true),
        opt_float("noise", 0.0, "std of Gaussian noise added to each gradient coordinate", 0),
        opt_float("x0", 1.0, "initial value of every coordinate of x")}},
  };
  data.children = {partition};
  return data;
}

Section model_section() {
  Section s{"model", "The model trained by every client (one flat float32 parameter buffer)."};
  s.default_component = "auto";
  s.components = {
      {"auto", "quadratic for quadratic data, linear for regression, logreg otherwise", {}},
      {"linear", "least-squares linear regression (regression data)", {}},
      {"logreg", "multinomial logistic regression, softmax cross-entropy", {}},
      {"mlp",
       "fully connected network, softmax cross-entropy",
       {opt_int_list("hidden", "[200]", "hidden layer sizes", 1),
        opt_enum("activation", "relu", {"relu", "tanh", "sigmoid"}, "hidden activation")}},
      {"quadratic", "the quadratic clients' own objective (quadratic data only)", {}},
  };
  return s;
}

Section algorithm_section() {
  Section s{"algorithm", "What sampled clients compute each round (ALGORITHMS.md §1)."};
  s.default_component = "fedavg";
  s.components = {
      {"sgd",
       "server-only SGD (FedSGD): one minibatch gradient per sampled client at x",
       {opt_int("batch_size", 32, "minibatch size; 0: the client's full data")}},
      {"fedavg",
       "K local SGD steps (or E local epochs), client sends x - y_K",
       {opt_int("local_steps", 0, "local SGD steps K; 0: use local_epochs"),
        opt_int("local_epochs", 1, "passes over the client's data when local_steps is 0"),
        opt_int("batch_size", 32, "minibatch size B; 0: the client's full data"),
        opt_float("local_lr", 0.05, "local learning rate", 0, INFINITY, true)}},
  };
  return s;
}

Section server_optimizer_section() {
  Section s{"server_optimizer", "How the server applies the aggregate g to x."};
  s.default_component = "sgd";
  auto lr = [](double def) {
    return opt_float("lr", def, "server learning rate", 0, INFINITY, true);
  };
  s.components = {
      {"sgd", "x <- x - lr g (lr = 1 with fedavg is plain FedAvg)", {lr(1.0)}},
      {"momentum",
       "ema: m <- (1-beta) g + beta m; heavy_ball: m <- beta m + g; x <- x - lr m",
       {lr(1.0), opt_float("beta", 0.9, "momentum", 0, 1),
        opt_enum("form", "ema", {"ema", "heavy_ball"}, "momentum form")}},
      {"nesterov",
       "m <- beta m + g; x <- x - lr (g + beta m)",
       {lr(1.0), opt_float("beta", 0.9, "momentum", 0, 1)}},
      {"adam",
       "Adam (FedAdam): m, v moving averages of g and g^2",
       {lr(0.01), opt_float("beta1", 0.9, "first-moment decay", 0, 1),
        opt_float("beta2", 0.99, "second-moment decay", 0, 1),
        opt_float("eps", 1e-3, "added to sqrt(v) (tau in the FedOpt paper)", 0, INFINITY, true),
        opt_bool("bias_correction", false, "divide m, v by 1 - beta^t")}},
      {"yogi",
       "Yogi (FedYogi): v <- v - (1-beta2) g^2 sign(v - g^2)",
       {lr(0.01), opt_float("beta1", 0.9, "first-moment decay", 0, 1),
        opt_float("beta2", 0.99, "second-moment decay", 0, 1),
        opt_float("eps", 1e-3, "added to sqrt(v)", 0, INFINITY, true),
        opt_bool("bias_correction", false, "divide m, v by 1 - beta^t")}},
  };
  return s;
}

Section slot(std::string key, std::string help, std::vector<Component> comps) {
  Section s{std::move(key), std::move(help)};
  s.default_component = comps.front().name;
  s.components = std::move(comps);
  return s;
}

Section build_schema() {
  Section root{"", "A cohort run."};
  root.options = {
      opt_int("seed", 0, "run seed; keys every random stream (Note [Keyed randomness])"),
      opt_int("rounds", 10, "communication rounds", 1),
  };
  Section clients{"clients", "The client population and sampling."};
  clients.options = {
      opt_int("num_clients", 10, "population N; clients are spread over ranks in blocks", 1),
      opt_int("per_round", 0, "clients sampled per round; 0: use fraction"),
      opt_float("fraction", 1.0, "share of N sampled per round when per_round is 0", 0, 1, true),
  };
  Section eval{"eval", "Evaluation of the global model on the test set."};
  eval.options = {
      opt_int("every", 1, "evaluate every this many rounds (and always after the last); 0: last only"),
      opt_int("chunk", 1000, "test rows per evaluation chunk (fixed, so results are rank-independent)",
              1),
  };
  Section comm{"comm", "How ranks exchange messages."};
  comm.options = {
      opt_enum("backend", "auto", {"auto", "mpi", "self"},
               "auto: mpi when launched with several ranks, self otherwise"),
      opt_enum("plan", "auto", {"auto", "reduce"},
               "exchange plan (ARCHITECTURE.md); reduce: one all-reduce of exact sums"),
  };
  Section output{"output", "Where results go."};
  output.options = {
      opt_string("path", "results/run/metrics.h5", "HDF5 results file (directories are created)"),
      opt_bool("save_model", true, "store the final model in /model"),
      opt_int("progress_every", 1, "print a progress line every this many rounds; 0: never"),
  };
  root.children = {
      data_section(),
      model_section(),
      clients,
      algorithm_section(),
      server_optimizer_section(),
      slot("aggregator", "How the server combines client messages.",
           {{"mean",
             "(weighted) average of the messages",
             {opt_bool("weighted", false, "weight clients by their sample counts")}}}),
      slot("compressor", "Compression of client messages (uplink).",
           {{"none", "send float32 values, 32 bits per coordinate", {}}}),
      slot("attack", "Byzantine behaviour of some clients.",
           {{"none", "every client is honest", {}}}),
      eval,
      comm,
      output,
  };
  return root;
}

}  // namespace

const Section& run_schema() {
  static const Section schema = build_schema();
  return schema;
}

}  // namespace cohort
