#include "algo/runner.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <mpi.h>

#include "algo/interrupt.h"
#include "algo/round.h"
#include "algo/run_state.h"
#include "core/build_info.h"
#include "core/errors.h"
#include "core/state.h"
#include "exchange/downlink.h"
#include "exchange/exchange.h"
#include "metrics/checkpoint.h"
#include "metrics/results_file.h"
#include "metrics/round_recorder.h"
#include "model/gemm.h"
#include "privacy/secagg.h"

namespace cohort::algo {
namespace {

// Note [Stopping mid-round]: SIGINT, SIGTERM or SIGUSR1 must stop a run within a bounded time,
// also when one round takes minutes (Open MPI's mpirun, given SIGTERM or SIGINT, SIGKILLs the
// ranks a second after forwarding SIGTERM to them: README "Checkpoints, resuming and
// preemption"). The signal is agreed on collectively after every round; a round whose local
// phase may be long is also abandoned mid-way: local training asks abandon_local_work() between
// steps (fedavg) or clients (runner, sgd) and returns at once. A partly trained round has
// already changed per-client state (compressor residuals, worker momentum, the downlink's
// state), so it may be abandoned only when its start state was kept: at the start of the
// first round and of every round after one whose local phase took at least
// kAbandonAfterSeconds and twenty times what keeping the state cost, every rank serializes
// what a checkpoint holds (RunState::save_local, and save_shared on rank 0). After the local phase the ranks agree (one all-reduce, only in
// such rounds) whether any of them abandoned; if one did, the round is dropped on every rank:
// nothing of it reaches the results file, the checkpoint is written from the kept state (the
// one after the last completed round) and the run ends `preempted`. Short rounds are not
// abandoned (they end soon anyway) and pay nothing. Each decision uses values all-reduced on
// every rank, so all ranks agree which round was the last completed one.
constexpr double kAbandonAfterSeconds = 0.5;

// Note [Population scale]: a round costs O(clients per round), not O(population), so that 10^7
// clients with 10^4 a round take the time of 10^4 clients with 10^4 a round:
//  - sampling is the first k steps of a Fisher-Yates shuffle that stores only the positions it
//    displaced (Rng::choose_sorted), with the draws and result of the dense shuffle;
//  - the exchange keeps one bits value per sampled client and all-reduces those k values;
//  - per-client results rows (/clients/uplink_bits, /clients/selected) cover the sampled
//    clients, aligned with /clients/sampled;
//  - client state (error feedback, worker momentum, compressor state) lives in the rank's
//    ClientStore, whose rows are allocated at a client's first participation (Note [Client
//    store]); a client that never took part costs nothing there.
// What remains per client is a few bytes: its sample count (int64, the weights of the mean),
// the Byzantine flag, and the labelflip flag; data.partition.name = pool draws a client's rows
// from its keyed stream when it trains, so a partition stores nothing per client either
// (other partitions store each client's row indices, which is data). results/bench_population.md
// measures it.

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// COHORT_FAULT=RANK:ROUND makes that rank fail in that (1-based) round: the hook the failure tests use
// to check that one rank's failure aborts the whole job with rank, host and reason.
struct FaultInjection {
  long long rank = -1, round = -1;
};
FaultInjection fault_from_environment() {
  FaultInjection f;
  if (const char* v = std::getenv("COHORT_FAULT"))
    if (std::sscanf(v, "%lld:%lld", &f.rank, &f.round) != 2) f = FaultInjection{};
  return f;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

// Rank 0: the results file's run attributes and the start-up banner.
void describe_run(metrics::ResultsFile& out, const Config& cfg, const RunState& s,
                  comm::Communicator& comm) {
  int mpi_major = 0, mpi_minor = 0, len = 0;
  MPI_Get_version(&mpi_major, &mpi_minor);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  MPI_Get_library_version(lib, &len);
  std::string mpi_lib(lib, static_cast<std::size_t>(len));
  if (auto nl = mpi_lib.find_first_of("\r\n,"); nl != std::string::npos) mpi_lib.resize(nl);
  out.set_attribute("seed", static_cast<std::int64_t>(cfg.get_int("seed")));
  out.set_attribute("version", std::string(kVersion));
  out.set_attribute("git_revision", std::string(kGitRevision));
  out.set_attribute("mpi_version", fmt::format("MPI {}.{} ({})", mpi_major, mpi_minor, mpi_lib));
  out.set_attribute("hdf5_version", metrics::hdf5_version());
  out.set_attribute("nccl_version", std::string("none"));
  out.set_attribute("ranks", static_cast<std::int64_t>(comm.size()));
  out.set_attribute("backend", comm.name());
  out.set_attribute("plan", s.exchange->describe());
  out.set_attribute("sum", cfg.get_string("comm.sum") == "float"
                               ? std::string("float (results depend on the rank count)")
                               : std::string("exact (bitwise the same at any rank count)"));
  out.set_attribute("downlink", s.downlink->describe());
  out.set_attribute("client_threads", static_cast<std::int64_t>(s.workers->size()));
  // The path of the models' products, which the bits depend on (Note [Model GEMM paths]).
  out.set_attribute("model_gemm", isa_name(model::detail::gemm_isa()));
  out.set_attribute("num_params", static_cast<std::int64_t>(s.problem->num_params()));
  out.set_attribute("problem", s.problem->description());
  out.write_vector("/clients/num_samples", s.problem->sample_counts());
  std::vector<std::int64_t> byz(static_cast<std::size_t>(s.num_clients), 0);
  for (int c : s.behaviour->byzantine_set()) byz[static_cast<std::size_t>(c)] = 1;
  out.write_vector("/clients/byzantine", byz);
  if (s.problem->has_client_tests()) {  // Note [Client test sets]
    std::vector<std::int64_t> tests(static_cast<std::size_t>(s.num_clients));
    for (int c = 0; c < s.num_clients; ++c) tests[static_cast<std::size_t>(c)] = s.problem->client_test_samples(c);
    out.write_vector("/clients/test_samples", tests);
  }
  out.set_attribute("personalization", s.personal.front()->options().name);
  out.set_attribute("privacy", s.dp.describe());
  out.set_attribute("averaging", s.average.describe());
  if (s.dp.accounted()) out.set_attribute("noise_multiplier", s.dp.sigma);
  const privacy::SecaggOptions secagg = privacy::SecaggOptions::from_config(cfg);
  out.set_attribute("secagg", secagg.describe());
  if (secagg.enabled) out.set_attribute("secagg_fraction_bits", static_cast<std::int64_t>(secagg.fraction_bits));
  if (s.network) {
    out.set_attribute("topology", s.network->describe());
    out.set_attribute("spectral_gap", s.network->spectral_gap());
  }
  out.set_status("running");
  fmt::print("cohort {}: {}\n", kVersion, s.problem->description());
  fmt::print("{}", s.problem->model_summary());
  const int threads = s.workers->size();
  const std::string threaded =
      threads > 1 ? fmt::format(" x {} client threads", threads) : std::string();
  if (s.network) {  // Note [Decentralized rounds]
    fmt::print("  {} ranks ({} backend){}, {} nodes, {} active per round, algorithm {}, no "
               "server\n",
               comm.size(), comm.name(), threaded, s.num_clients, s.per_round,
               cfg.get_string("algorithm.name"));
    fmt::print("  {}\n", s.network->describe());
  } else {
    fmt::print("  {} ranks ({} backend){}, {} clients, {} per round, algorithm {}, server {}\n",
               comm.size(), comm.name(), threaded, s.num_clients, s.per_round,
               s.algorithms.front()->name(), s.server->name());
  }
  fmt::print("  model products: {} path (Note [Model GEMM paths])\n",
             isa_name(model::detail::gemm_isa()));
  if (s.network && cfg.get_string("compressor.name") != "none")
    fmt::print("  gossip compressor: {}\n", cfg.get_string("compressor.name"));
  else if (!s.network)
    fmt::print("  exchange plan: {}; {}\n", s.exchange->describe(), s.downlink->describe());
  if (s.anchor)  // Note [Anchor gradients]
    fmt::print("  gradients at x first: {}\n", s.anchor->describe());
  if (s.dp.accounted()) fmt::print("  privacy: {}\n", s.dp.describe());
  if (s.average.enabled())
    fmt::print("  iterate averaging: {} (evaluations use the average)\n", s.average.describe());
  if (secagg.enabled) fmt::print("  secure aggregation: {}\n", secagg.describe());
  fmt::print("  client state: {}\n", s.client_state.describe());
  fmt::print("  results -> {}\n", out.path());
  std::fflush(stdout);
}

}  // namespace

RunOutcome run_experiment(const Config& cfg, comm::Communicator& comm, const RunOptions& options) {
  const int rank = comm.rank();
  const bool root = rank == 0;
  const long long rounds = cfg.get_int("rounds");
  const auto t_start = Clock::now();

  // --resume: the newest valid checkpoint of this config (Note [Checkpoints]), read on every
  // rank; each rank keeps the client state of the clients it owns.
  const metrics::CheckpointOptions ck = metrics::CheckpointOptions::from_config(cfg);
  std::optional<metrics::LoadedCheckpoint> loaded;
  if (options.resume)
    collectively(comm, [&] {
      try {
        loaded = metrics::read_newest_checkpoint(ck, cfg);
      } catch (const UsageError& e) {
        // --resume --overwrite (what sweeps run): checkpoints of another config or version are
        // left behind and the run starts afresh.
        if (!options.overwrite) throw;
        if (root) fmt::print(stderr, "cohort: warning: {}; starting afresh (--overwrite)\n", e.what());
      }
    });
  // The results path is claimed first, so a path another run is writing is refused before the
  // data is loaded (Note [Results file ownership]). A resume replaces the results file of the
  // run it continues (its rows up to the checkpoint come back from the checkpoint).
  std::optional<metrics::ResultsClaim> claim;
  collectively(comm, [&] {
    if (!root) return;
    bool replace = options.overwrite || loaded.has_value();
    if (options.resume && !replace) {  // no checkpoint: replace only this config's own file
      const auto info = metrics::inspect_results_file(cfg.get_string("output.path"));
      replace = info.kind == metrics::ResultsFileInfo::Kind::kResults &&
                metrics::config_differences(cfg.resolved_text(), info.config).empty();
    }
    // A checkpoint of this config in output.path + ".checkpoints" also shows that an HDF5 file
    // there that cannot be read is this run's own, killed mid-write by an older cohort (Note
    // [Results file ownership]).
    const bool own_checkpoint =
        loaded.has_value() && ck.dir == cfg.get_string("output.path") + ".checkpoints";
    claim.emplace(cfg.get_string("output.path"),
                  own_checkpoint ? metrics::ExistingResults::kReplaceDamaged
                  : replace      ? metrics::ExistingResults::kReplace
                                 : metrics::ExistingResults::kRefuse);
  });
  RunState s = build(cfg, comm);  // Note [One setup for run and validate]
  std::unique_ptr<metrics::ResultsFile> out;
  collectively(comm, [&] {
    if (root) out = std::make_unique<metrics::ResultsFile>(std::move(*claim), cfg.resolved_text());
  });
  const long long progress_every = cfg.get_int("output.progress_every");
  if (root) describe_run(*out, cfg, s, comm);

  // Continue from the checkpoint: the state, and the results rows written up to it.
  double last_loss = NAN, last_acc = NAN;
  if (loaded) {
    const StateBundle& st = loaded->state;
    collectively(comm, [&] { s.load(st, loaded->round, loaded->path); });
    if (st.has("results/rounds/test_loss")) {
      for (double v : st.get_f64("results/rounds/test_loss")) last_loss = std::isnan(v) ? last_loss : v;
      for (double v : st.get_f64("results/rounds/test_accuracy")) last_acc = std::isnan(v) ? last_acc : v;
    }
    if (root) {
      out->import_rows(st);
      out->set_attribute("resumed_from", fmt::format("{} (round {})", loaded->path, s.round));
      for (const auto& w : loaded->warnings) fmt::print(stderr, "cohort: warning: {}\n", w);
      fmt::print("resuming from {} after round {} of {}\n", loaded->path, s.round, rounds);
      std::fflush(stdout);
    }
  } else if (options.resume && root) {
    fmt::print("no checkpoint in {}: starting from round 1\n", ck.dir);
  }
  // What a checkpoint holds: each rank's part (its clients) and rank 0's (model, server,
  // downlink). Kept at the start of a round that may be abandoned (Note [Stopping mid-round]).
  struct Saved {
    std::vector<std::uint8_t> local;
    StateBundle shared;
  };
  const auto capture = [&] {
    Saved v;
    v.local = s.save_local().serialize();
    if (root) v.shared = s.save_shared();
    return v;
  };
  // Collective: the state after `done` rounds into a checkpoint file (rank 0 writes it); `kept`
  // is that state when it was captured earlier, else the current one is. A file that cannot be
  // written is reported and the run goes on.
  const auto save_checkpoint = [&](long long done, const Saved* kept) {
    const auto t0 = Clock::now();
    std::optional<Saved> now;
    if (kept == nullptr) kept = &now.emplace(capture());
    const auto parts = comm.allgather_bytes(kept->local);
    if (!root) return;
    StateBundle b;
    for (const auto& part : parts) b.merge(StateBundle::deserialize(part));
    b.merge(StateBundle(kept->shared));
    out->export_rows(b);
    try {
      const std::string path = metrics::write_checkpoint(ck, b, done, cfg.resolved_text());
      if (progress_every > 0)
        fmt::print("checkpoint {} ({:.3f} s)\n", path, seconds_since(t0));
    } catch (const std::exception& e) {
      fmt::print(stderr, "cohort: warning: checkpoint after round {} not written: {}\n", done,
                 e.what());
    }
    std::fflush(stdout);
  };

  RunOutcome result{"completed", "", s.round, NAN, NAN, root ? out->path() : "", {}};
  Round round(cfg, comm);
  metrics::RoundRecorder recorder(root ? out.get() : nullptr, rounds, progress_every);
  const FaultInjection fault = fault_from_environment();
  const long long start = s.round;
  double last_local_max = 0, keep_cost_max = 0;  // all-reduced: the same on every rank
  // eval.stop_at_accuracy: the accuracy is all-reduced, so every rank stops after the same round.
  const double stop_accuracy = cfg.get_float("eval.stop_at_accuracy");
  long long target_round = -1;
  try {
    while (s.round < rounds) {
      const long long t = s.round;
      const auto round_start = Clock::now();
      // Note [Stopping mid-round]: keep the start state where the round may be long.
      const bool may_abandon = t == start || (last_local_max >= kAbandonAfterSeconds &&
                                              last_local_max >= 20 * keep_cost_max);
      double keep_cost = 0;
      std::optional<Saved> kept;
      if (may_abandon) {
        const auto k0 = Clock::now();
        kept.emplace(capture());
        keep_cost = seconds_since(k0);
      }
      // Notes [DP-FedAvg], [DP-SGD]: a round that would spend more than the budget is not run.
      if (s.dp.accounted() && std::isfinite(s.dp.target) && s.dp.epsilon_after(t + 1) > s.dp.target) {
        result.status = "budget_exhausted";
        result.message = fmt::format(
            "privacy budget reached: round {} would raise epsilon to {:.4g}, above "
            "privacy.target_epsilon = {:g} ({} rounds done at epsilon {:.4g})",
            t + 1, s.dp.epsilon_after(t + 1), s.dp.target, t, s.dp.epsilon_after(t));
        break;
      }
      if (fault.round == t + 1 && fault.rank == rank)
        throw std::runtime_error(fmt::format("injected fault (COHORT_FAULT) in round {}", t + 1));
      Round::Result r = round.execute(s, may_abandon, keep_cost);
      if (r.abandoned) {  // dropped on every rank: the checkpoint is the kept state after round t
        if (t > 0) save_checkpoint(t, &*kept);
        result.status = "preempted";
        result.message = fmt::format("interrupted by a signal during round {} of {} (dropped; {} "
                                     "rounds done)", t + 1, rounds, t);
        break;
      }
      last_local_max = r.local_max;
      if (kept) keep_cost_max = r.keep_cost_max;
      kept.reset();
      const bool interrupted = comm.allreduce_scalar(static_cast<std::int64_t>(interrupt_signal()),
                                                     comm::ReduceOp::kMax) != 0;
      metrics::RoundRecord& rec = r.record;
      if (!std::isnan(rec.test_loss)) {  // evaluated this round
        last_loss = rec.test_loss;
        last_acc = rec.accuracy;
      }
      rec.time_round = seconds_since(round_start);
      recorder.record(rec, seconds_since(t_start));
      result.rounds_done = s.round;
      if (!rec.diverged.empty()) {
        result.status = "diverged";
        result.message = rec.diverged;
        break;
      }
      const bool reached = stop_accuracy > 0 && !std::isnan(rec.accuracy) &&
                           rec.accuracy >= stop_accuracy;
      const bool last = s.round == rounds || reached;
      if (interrupted || (ck.every > 0 && (s.round % ck.every == 0 || last)))
        save_checkpoint(s.round, nullptr);
      if (reached) {
        target_round = s.round;
        result.message = fmt::format(
            "test accuracy {:.4f} reached eval.stop_at_accuracy = {:g} after round {} of {}",
            rec.accuracy, stop_accuracy, s.round, rounds);
        break;
      }
      if (interrupted && !last) {
        result.status = "preempted";
        result.message = fmt::format("interrupted by a signal after round {} of {}", s.round, rounds);
        break;
      }
    }
  } catch (const std::exception& e) {
    // A failure on this rank: leave a readable file that says so, then let main abort the job.
    if (root) out->set_status("failed", e.what());
    throw;
  }

  if (root && !round.client_accuracy().empty()) {  // Note [Per-client evaluation]
    out->write_floats("/clients/accuracy", round.client_accuracy());
    if (!round.global_client_accuracy().empty())
      out->write_floats("/clients/global_accuracy", round.global_client_accuracy());
  }
  result.final_test_loss = last_loss;
  result.final_model = s.x;
  result.final_accuracy = last_acc;
  const double rss = peak_rss_mib();
  const double rss_max = comm.allreduce_scalar(rss, comm::ReduceOp::kMax);
  if (root) {
    if (cfg.get_bool("output.save_model") && result.status != "diverged") {
      for (const auto& l : s.problem->layers())
        out->write_matrix("/model/" + l.name, s.x.data() + l.offset, l.rows, l.cols);
      if (s.average.any()) {  // Note [Iterate averaging]
        std::vector<float> avg;
        s.average.read(avg);
        for (const auto& l : s.problem->layers())
          out->write_matrix("/model_averaged/" + l.name, avg.data() + l.offset, l.rows, l.cols);
      }
    }
    out->set_attribute("peak_rss_mib_max", rss_max);
    out->set_attribute("wall_seconds", seconds_since(t_start));
    out->set_attribute("rounds_done", static_cast<std::int64_t>(result.rounds_done));
    // The first round whose evaluation reached eval.stop_at_accuracy (-1: not reached).
    if (stop_accuracy > 0) {
      out->set_attribute("stop_at_accuracy", stop_accuracy);
      out->set_attribute("target_round", static_cast<std::int64_t>(target_round));
    }
    // mimic's target = variance: the honest client the attackers copied (-1: never chosen).
    if (s.behaviour && s.behaviour->picks_mimic_target())
      out->set_attribute("mimic_target", static_cast<std::int64_t>(s.behaviour->mimic_target()));
    out->set_status(result.status, result.message);
    if (result.status == "budget_exhausted") {
      fmt::print("stopped: {}\n", result.message);
    } else if (result.status == "completed") {
      fmt::print("completed {} rounds in {:.1f} s", result.rounds_done, seconds_since(t_start));
      if (target_round > 0) fmt::print(" (target accuracy reached)");
      if (!std::isnan(last_acc)) fmt::print(", test accuracy {:.2f}%", 100 * last_acc);
      fmt::print(", peak memory {:.0f} MiB per rank\n", rss_max);
    } else {
      fmt::print(stderr, "cohort: run {}: {}\n", result.status, result.message);
    }
    fmt::print("results: {}\n", out->path());
    std::fflush(stdout);
  }
  return result;
}

}  // namespace cohort::algo
