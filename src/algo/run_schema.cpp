// The run-config schema (Note [Registration]): the slots come from their categories' lists, each
// component's options declared beside its factory; the plain sections, whose keys the round loop,
// the sampling and the exchange read, are declared here.
#include "algo/run_schema.h"

#include <cmath>

#include "algo/algorithm.h"
#include "algo/averaging.h"
#include "algo/personalization.h"
#include "algo/problem.h"
#include "algo/server_optimizer.h"
#include "attack/attack.h"
#include "decentral/topology.h"
#include "privacy/dp.h"
#include "privacy/secagg.h"
#include "compress/compressor.h"
#include "robust/aggregator.h"

namespace cohort::algo {
namespace {

// A section of plain keys (options set by the caller).
Section plain(std::string key, std::string help) {
  Section s;
  s.key = std::move(key);
  s.help = std::move(help);
  return s;
}

Section build_schema() {
  Section root = plain("", "A cohort run.");
  root.options = {
      opt_int64("seed", 0, "run seed; keys every random stream (Note [Keyed randomness])"),
      opt_int("rounds", 10, "communication rounds", 1),
  };
  Section clients = plain("clients", "The client population and sampling.");
  clients.options = {
      opt_int("num_clients", 10, "population N; clients are spread over ranks in blocks", 1),
      opt_int("per_round", 0, "clients sampled per round; 0: use fraction"),
      opt_float("fraction", 1.0, "share of N sampled per round when per_round is 0", 0, 1, true),
      opt_enum("sampling", "uniform", {"uniform", "poisson"},
               "uniform: per_round (or fraction N) clients without replacement; poisson: each "
               "client independently with probability fraction, a varying count (Note [Poisson "
               "sampling]; what DP accounting assumes)"),
      opt_int("threads", 1,
              "threads that train this rank's sampled clients, one client per thread; results "
              "are bitwise the same for every value (Note [Client threads])",
              1, 1024),
      opt_int("state_budget_mib", 0,
              "per-rank budget (MiB) for per-client state (error feedback, worker momentum, "
              "kept local momentum, compressor state), checked against its worst case before "
              "training; 0: no budget beyond the machine's memory"),
  };
  Section eval = plain("eval", "Evaluation of the global model on the test set.");
  eval.options = {
      opt_int("every", 1, "evaluate every this many rounds (and always after the last); 0: last only"),
      opt_int("chunk", 1000, "test rows per evaluation chunk (fixed, so results are rank-independent)",
              1),
      opt_bool("clients", false,
               "also evaluate every client on its local test set (data.client_test_fraction) "
               "with the model it uses (the global one, or its personal model) and record the "
               "distribution of client accuracies (/rounds/client_acc_*)"),
      opt_float("l2", 0.0,
                "lambda > 0: also record /rounds/objective = test loss + lambda/2 |x|^2 of the "
                "evaluated model (set the test set to the training file to track a regularised "
                "training objective); 0: not recorded",
                0),
      opt_int("nodes_every", 0,
              "decentralized runs: evaluate every node's own model on the test set every this "
              "many rounds (and after the last) for /rounds/node_acc_{mean,min}; 0: never"),
      opt_float("stop_at_accuracy", 0.0,
                "a > 0: end the run (status completed, attribute target_round) after the first "
                "evaluation whose test accuracy is at least a, as in rounds-to-target "
                "experiments; 0: run all rounds",
                0, 1),
  };
  Section comm = plain("comm", "How ranks exchange messages.");
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
  Section checkpoint =
      plain("checkpoint", "Checkpoints of the run state, for --resume (Note [Checkpoints]).");
  checkpoint.options = {
      opt_int("every", 0,
              "write a checkpoint every N rounds and at the end; 0: only when the run is "
              "preempted (SIGTERM, SIGUSR1, SIGINT), which always writes one",
              0),
      opt_string("path", "",
                 "directory of the checkpoint files; empty: output.path + \".checkpoints\""),
      opt_int("keep", 2, "checkpoints kept (the newest)", 1),
  };
  Section output = plain("output", "Where results go.");
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
      personalization_section(),
      decentral::topology_section(),
      privacy::privacy_section(),
      averaging_section(),
      privacy::secagg_section(),
      server_optimizer_section(),
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

}  // namespace cohort::algo
