// The run-config schema: every key, its type, default and meaning. Components are listed here
// once per category (explicit registration, docs/architecture.md "Registration"); their factories
// live beside them and read exactly these keys.
#include <cmath>

#include "algo/algorithm.h"
#include "algo/server_optimizer.h"
#include "attack/attack.h"
#include "compress/compressor.h"
#include "core/schema.h"
#include "data/loaders.h"
#include "robust/aggregator.h"

namespace cohort {
namespace {

Section data_section() {
  Section partition{"partition", "How training samples are assigned to clients."};
  partition.default_component = "auto";
  partition.components = {
      {"auto", "natural for synthetic, inline and quadratic data, iid otherwise", {}},
      {"iid", "uniformly random, near-equal sizes", {}},
      {"dirichlet",
       "per-class proportions over clients drawn from Dirichlet(alpha) (classification only)",
       {opt_float("alpha", 0.5, "concentration; smaller means more label skew", 0, INFINITY,
                  true)}},
      {"shards",
       "label-sorted data cut into num_clients*shards_per_client shards, k per client",
       {opt_int("shards_per_client", 2, "shards (label blocks) per client", 1)}},
      {"natural", "the generator's own per-client blocks (synthetic and inline data)", {}},
      {"pool",
       "each client draws samples_per_client training rows with replacement from its own keyed "
       "stream, when it trains: nothing is stored per client, so a population may exceed the "
       "rows (10^7 clients on 60,000 rows)",
       {opt_int("samples_per_client", 10, "rows each client draws", 1)}},
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
      {"inline",
       "a small data set written in the config; row i belongs to client i mod N; the test set "
       "is the training set (for optimisation studies)",
       {opt_int("dim", 1, "features per row", 1),
        opt_float_list("x", "[]", "features, row after row (rows * dim values)"),
        opt_float_list("y", "[]", "one target (regression) or class label per row"),
        opt_enum("task", "regression", {"regression", "classification"},
                 "targets are real values, or labels remapped to 0..C-1")}},
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
      {"linear",
       "least-squares linear regression (regression data)",
       {opt_bool("bias", true, "learn an intercept b besides w"),
        opt_float("init", 0.0, "initial value of every weight (the bias starts at 0)")}},
      {"logreg", "multinomial logistic regression, softmax cross-entropy", {}},
      {"mlp",
       "fully connected network, softmax cross-entropy",
       {opt_int_list("hidden", "[200]", "hidden layer sizes", 1),
        opt_enum("activation", "relu", {"relu", "tanh", "sigmoid"}, "hidden activation")}},
      {"quadratic", "the quadratic clients' own objective (quadratic data only)", {}},
  };
  return s;
}

Section build_schema() {
  Section root{"", "A cohort run."};
  root.options = {
      opt_int64("seed", 0, "run seed; keys every random stream (Note [Keyed randomness])"),
      opt_int("rounds", 10, "communication rounds", 1),
  };
  Section clients{"clients", "The client population and sampling."};
  clients.options = {
      opt_int("num_clients", 10, "population N; clients are spread over ranks in blocks", 1),
      opt_int("per_round", 0, "clients sampled per round; 0: use fraction"),
      opt_float("fraction", 1.0, "share of N sampled per round when per_round is 0", 0, 1, true),
      opt_int("state_budget_mib", 0,
              "per-rank budget (MiB) for per-client state (error feedback, worker momentum, "
              "compressor state), checked against its worst case before training; 0: no budget "
              "beyond the machine's memory"),
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
      opt_enum("plan", "auto", {"auto", "reduce", "gather", "shard"},
               "exchange plan (docs/architecture.md): reduce all-reduces exact sums of decoded "
               "messages; gather all-gathers the encoded messages; shard gives each rank all "
               "messages on a block of coordinates (robust rules except zeno; same results as "
               "gather); auto: reduce for sums, and for robust rules gather, or shard when a "
               "round's messages exceed memory_budget_mib"),
      opt_enum("sum", "exact", {"exact", "float"},
               "how the reduce and gather plans sum messages: exact (64-bit fixed point, "
               "bitwise the same at any rank count; Note [Deterministic sums]) or float "
               "(float32 sums and a float32 all-reduce: fastest, but the result depends on the "
               "rank count)"),
      opt_int("memory_budget_mib", 4096,
              "per-rank budget for one round's messages (clients per round x d x 4 bytes) "
              "above which plan auto shards a robust rule's input", 1),
  };
  Section checkpoint{"checkpoint", "Checkpoints of the run state, for --resume (Note [Checkpoints])."};
  checkpoint.options = {
      opt_int("every", 0,
              "write a checkpoint every N rounds and at the end; 0: only when the run is "
              "preempted (SIGTERM, SIGUSR1, SIGINT), which always writes one",
              0),
      opt_string("path", "",
                 "directory of the checkpoint files; empty: output.path + \".checkpoints\""),
      opt_int("keep", 2, "checkpoints kept (the newest)", 1),
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
      algo::algorithm_section(),
      algo::server_optimizer_section(),
      robust::aggregator_section(),
      compress::compressor_section(compress::kUplinkSlot),
      compress::compressor_section(compress::kDownlinkSlot),
      attack::attack_section(),
      eval,
      comm,
      output,
      checkpoint,
  };
  return root;
}

}  // namespace

const Section& run_schema() {
  static const Section schema = build_schema();
  return schema;
}

}  // namespace cohort
