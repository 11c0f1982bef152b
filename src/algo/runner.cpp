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

#include "algo/algorithm.h"
#include "algo/clients.h"
#include "algo/interrupt.h"
#include "algo/problem.h"
#include "algo/sampling.h"
#include "algo/server_optimizer.h"
#include "algo/setup.h"
#include "core/build_info.h"
#include "core/errors.h"
#include "core/exact_sum.h"
#include "core/state.h"
#include "exchange/downlink.h"
#include "exchange/exchange.h"
#include "metrics/checkpoint.h"
#include "metrics/results_file.h"

namespace cohort::algo {
namespace {

volatile std::sig_atomic_t g_interrupt = 0;
extern "C" void on_signal(int sig) { g_interrupt = sig; }
bool g_may_abandon = false;  // this round's start state is kept (Note [Stopping mid-round])
bool g_abandoned = false;    // this rank stopped its local work of this round early

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
// what a checkpoint holds. After the local phase the ranks agree (one all-reduce, only in
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
//  - client state (error feedback, worker momentum, compressor state) lives in maps filled at a
//    client's first participation; a client that never took part costs nothing there.
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

struct PhaseTimes {
  double local = 0, comm = 0, aggregate = 0, eval = 0;
};

std::string human_bits(double bits) {
  const char* units[] = {"bit", "kbit", "Mbit", "Gbit", "Tbit"};
  int u = 0;
  while (bits >= 1000 && u < 4) {
    bits /= 1000;
    ++u;
  }
  return fmt::format("{:.1f} {}", bits, units[u]);
}

std::string human_seconds(double s) {
  if (s < 120) return fmt::format("{:.0f}s", s);
  if (s < 7200) return fmt::format("{:.0f}m{:02.0f}s", std::floor(s / 60), std::fmod(s, 60));
  return fmt::format("{:.0f}h{:02.0f}m", std::floor(s / 3600), std::fmod(s / 60, 60));
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

}  // namespace

bool abandon_local_work() {
  if (g_may_abandon && g_interrupt != 0) g_abandoned = true;
  return g_abandoned;
}

void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGUSR1, on_signal);  // SLURM's warning before a time limit (--signal=B:USR1@T)
}

RunOutcome run_experiment(const Config& cfg, comm::Communicator& comm, const RunOptions& options) {
  const int rank = comm.rank(), ranks = comm.size();
  const bool root = rank == 0;
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
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
  RunSetup setup = prepare_run(cfg, comm);  // Note [One setup for run and validate]
  std::unique_ptr<metrics::ResultsFile> out;
  collectively(comm, [&] {
    if (root) out = std::make_unique<metrics::ResultsFile>(std::move(*claim), cfg.resolved_text());
  });
  const std::unique_ptr<Problem>& problem = setup.problem;
  const std::unique_ptr<Algorithm>& algorithm = setup.algorithm;
  const std::unique_ptr<ServerOptimizer>& server = setup.server;
  const std::unique_ptr<exchange::Exchange>& exchange = setup.exchange;
  const std::unique_ptr<ClientBehaviour>& behaviour = setup.behaviour;
  std::vector<float>& x = setup.x;
  const int num_clients = setup.num_clients, per_round = setup.per_round;
  const std::int64_t d = problem->num_params();
  const ClientBlock mine = client_block(num_clients, rank, ranks);
  const bool weighted = cfg.get_string("aggregator.name") == "mean" &&
                        cfg.get_bool("aggregator.weighted");
  std::vector<float> msg(x.size()), g(x.size());
  exchange::Downlink& downlink = *setup.downlink;
  const long long exchange_batch =
      cfg.get_string("aggregator.name") == "zeno" ? cfg.get_int("aggregator.batch") : 32;
  const auto counts = problem->sample_counts();
  const long long eval_every = cfg.get_int("eval.every");
  const std::string agg_name = cfg.get_string("aggregator.name");
  const bool selecting_rule = agg_name == "krum" || agg_name == "multikrum" ||
                              agg_name == "bulyan" || agg_name == "zeno";
  const long long progress_every = cfg.get_int("output.progress_every");

  if (root) {
    int mpi_major = 0, mpi_minor = 0, len = 0;
    MPI_Get_version(&mpi_major, &mpi_minor);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    MPI_Get_library_version(lib, &len);
    std::string mpi_lib(lib, static_cast<std::size_t>(len));
    if (auto nl = mpi_lib.find_first_of("\r\n,"); nl != std::string::npos) mpi_lib.resize(nl);
    out->set_attribute("seed", static_cast<std::int64_t>(seed));
    out->set_attribute("version", std::string(kVersion));
    out->set_attribute("git_revision", std::string(kGitRevision));
    out->set_attribute("mpi_version", fmt::format("MPI {}.{} ({})", mpi_major, mpi_minor, mpi_lib));
    out->set_attribute("hdf5_version", metrics::hdf5_version());
    out->set_attribute("nccl_version", std::string("none"));
    out->set_attribute("ranks", static_cast<std::int64_t>(ranks));
    out->set_attribute("backend", comm.name());
    out->set_attribute("plan", exchange->describe());
    out->set_attribute("sum", cfg.get_string("comm.sum") == "float"
                                  ? std::string("float (results depend on the rank count)")
                                  : std::string("exact (bitwise the same at any rank count)"));
    out->set_attribute("downlink", downlink.describe());
    out->set_attribute("num_params", static_cast<std::int64_t>(d));
    out->set_attribute("problem", problem->description());
    out->write_vector("/clients/num_samples", counts);
    std::vector<std::int64_t> byz(static_cast<std::size_t>(num_clients), 0);
    for (int c : behaviour->byzantine_set()) byz[static_cast<std::size_t>(c)] = 1;
    out->write_vector("/clients/byzantine", byz);
    out->set_status("running");
    fmt::print("cohort {}: {}\n", kVersion, problem->description());
    fmt::print("  {} ranks ({} backend), {} clients, {} per round, algorithm {}, server {}\n",
               ranks, comm.name(), num_clients, per_round, algorithm->name(), server->name());
    fmt::print("  exchange plan: {}; {}\n", exchange->describe(), downlink.describe());
    fmt::print("  client state: {}\n", setup.client_state.describe());
    fmt::print("  results -> {}\n", out->path());
    std::fflush(stdout);
  }

  // Continue from the checkpoint: the state, and the results rows written up to it.
  long long start = 0;
  double last_loss = NAN, last_acc = NAN;
  const auto owns = [&](int c) { return mine.owns(c); };
  if (loaded) {
    const StateBundle& st = loaded->state;
    start = loaded->round;
    x = st.get_f32("run/x");
    require_usage(static_cast<std::int64_t>(x.size()) == d,
                  fmt::format("checkpoint {} holds a model of {} parameters; this run has {}",
                              loaded->path, x.size(), d));
    server->load(st);
    downlink.load(st);
    exchange->load(st, owns);
    behaviour->load(st, owns);
    if (st.has("results/rounds/test_loss")) {
      for (double v : st.get_f64("results/rounds/test_loss")) last_loss = std::isnan(v) ? last_loss : v;
      for (double v : st.get_f64("results/rounds/test_accuracy")) last_acc = std::isnan(v) ? last_acc : v;
    }
    if (root) {
      out->import_rows(st);
      out->set_attribute("resumed_from", fmt::format("{} (round {})", loaded->path, start));
      for (const auto& w : loaded->warnings) fmt::print(stderr, "cohort: warning: {}\n", w);
      fmt::print("resuming from {} after round {} of {}\n", loaded->path, start, rounds);
      std::fflush(stdout);
    }
  } else if (options.resume && root) {
    fmt::print("no checkpoint in {}: starting from round 1\n", ck.dir);
  }
  // The state a checkpoint holds: each rank's part (its clients) and rank 0's (model, server,
  // downlink). Kept at the start of a round that may be abandoned (Note [Stopping mid-round]).
  struct RunState {
    std::vector<std::uint8_t> local;
    StateBundle shared;
  };
  const auto capture_state = [&] {
    RunState s;
    StateBundle local;
    exchange->save(local);
    behaviour->save(local);
    s.local = local.serialize();
    if (root) {
      s.shared.f32["run/x"] = x;
      server->save(s.shared);
      downlink.save(s.shared);
    }
    return s;
  };
  // Collective: the state after `done` rounds into a checkpoint file (rank 0 writes it); `kept`
  // is that state when it was captured earlier, else the current one is. A file that cannot be
  // written is reported and the run goes on.
  const auto save_checkpoint = [&](long long done, const RunState* kept) {
    const auto t0 = Clock::now();
    std::optional<RunState> now;
    if (kept == nullptr) kept = &now.emplace(capture_state());
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

  ExactAccumulator scalars(2);  // train-loss sum, clients that trained
  RunOutcome result{"completed", "", start, NAN, NAN, root ? out->path() : "", {}};

  const FaultInjection fault = fault_from_environment();
  std::optional<RunState> kept;  // the state at the start of this round, if kept
  double last_local_max = 0, keep_cost_max = 0;  // all-reduced: the same on every rank
  try {
  for (long long t = start; t < rounds; ++t) {
    const auto round_start = Clock::now();
    // Note [Stopping mid-round]: keep the start state where the round may be long.
    g_may_abandon = t == start || (last_local_max >= kAbandonAfterSeconds &&
                                   last_local_max >= 20 * keep_cost_max);
    g_abandoned = false;
    double keep_cost = 0;
    kept.reset();
    if (g_may_abandon) {
      const auto k0 = Clock::now();
      kept.emplace(capture_state());
      keep_cost = seconds_since(k0);
    }
    if (fault.round == t + 1 && fault.rank == rank)
      throw std::runtime_error(fmt::format("injected fault (COHORT_FAULT) in round {}", t + 1));
    const auto round = static_cast<std::uint32_t>(t);
    PhaseTimes pt;
    const std::vector<int> sampled = sample_clients(seed, round, num_clients, per_round);

    // Local work on the clients this rank owns.
    auto t0 = Clock::now();
    std::int64_t down_bits = 0;
    const std::span<const float> x_client = downlink.broadcast(x, round, &down_bits);
    exchange->begin_round(round, sampled);
    const int zeno_batch = static_cast<int>(exchange_batch);
    exchange->set_validation(
        [&, round](const float* y) { return problem->server_loss(y, seed, round, zeno_batch); },
        x.data());
    scalars.clear();
    double total_weight = 0;
    behaviour->begin_round(round, sampled);
    auto weight = [&](int c) { return weighted ? static_cast<double>(counts[c]) : 1.0; };
    for (int c : sampled) {
      if (behaviour->sends(c)) total_weight += weight(c);
      if (!mine.owns(c) || !behaviour->trains(c)) continue;
      if (abandon_local_work()) break;
      const ClientResult r =
          algorithm->client_message(*problem, c, round, x_client.data(), msg.data());
      behaviour->process(c, msg);  // worker momentum, then the attack of a Byzantine client
      exchange->submit(c, msg, weight(c), behaviour->byzantine(c));
      scalars.add_at(0, r.train_loss);
      scalars.add_at(1, 1.0);
    }
    if (g_may_abandon && comm.allreduce_scalar(static_cast<std::int64_t>(g_abandoned),
                                               comm::ReduceOp::kMax) != 0) {
      // Dropped on every rank: the checkpoint is the kept state after round t.
      g_may_abandon = false;
      if (t > 0) save_checkpoint(t, &*kept);
      result.status = "preempted";
      result.message = fmt::format("interrupted by a signal during round {} of {} (dropped; {} "
                                   "rounds done)", t + 1, rounds, t);
      break;
    }
    g_may_abandon = false;  // past the local phase: the round completes
    behaviour->finish_honest(comm);
    if (behaviour->crafts())  // omniscient attackers send what the honest statistics suggest
      for (int c : sampled)
        if (mine.owns(c) && behaviour->byzantine(c)) {
          behaviour->craft(msg);
          exchange->submit(c, msg, weight(c), true);
        }
    pt.local = seconds_since(t0);

    // Exchange: the plan's all-reduce of the message sum (Note [Deterministic sums]).
    t0 = Clock::now();
    bool valid = exchange->finish(g.data(), total_weight);
    comm.allreduce(comm::View{scalars.data(), 2, comm::DType::kExact128}, comm::ReduceOp::kSum);
    const bool losses_valid = comm.allreduce_scalar(static_cast<std::int64_t>(scalars.valid()),
                                                    comm::ReduceOp::kMin) == 1;
    valid = valid && losses_valid;
    pt.comm = seconds_since(t0);
    // How far the aggregate lands from the honest clients' mean (attacks only).
    double dist_honest = NAN;
    if (behaviour->attacking() && valid) {
      const auto& mu = behaviour->honest_mean();
      double s2 = 0;
      for (std::int64_t i = 0; i < d; ++i) s2 += (g[i] - mu[i]) * (g[i] - mu[i]);
      dist_honest = std::sqrt(s2);
    }

    // Aggregate and server update (identical on every rank).
    t0 = Clock::now();
    std::string diverged;
    if (!valid) {
      diverged = fmt::format("round {}: a client message was not finite or exceeded 2^40", t + 1);
    } else {
      server->step(x.data(), g.data(), d);
      if (!std::all_of(x.begin(), x.end(), [](float v) { return std::isfinite(v); }))
        diverged = fmt::format("round {}: the global model is no longer finite", t + 1);
    }
    // A loss too large for the exact sum (or not finite) is reported as +inf, never as 0.
    const double train_loss =
        losses_valid ? scalars.value(0) / std::max(1.0, scalars.value(1)) : INFINITY;
    pt.aggregate = seconds_since(t0);

    // Evaluation in fixed chunks spread over ranks; sums are exact.
    t0 = Clock::now();
    double test_loss = NAN, accuracy = NAN;
    const std::vector<std::string> extra_names = problem->extra_metric_names();
    std::vector<double> extra(extra_names.size(), NAN);
    const bool last = t + 1 == rounds;
    if (diverged.empty() && (last || (eval_every > 0 && (t + 1) % eval_every == 0))) {
      ExactAccumulator loss(1);
      std::int64_t ints[2] = {0, 0};
      for (std::int64_t ch = rank; ch < problem->num_eval_chunks(); ch += ranks) {
        const EvalSums s = problem->evaluate_chunk(x.data(), ch);
        loss.add_at(0, s.loss_sum);
        ints[0] += s.correct;
        ints[1] += s.count;
      }
      comm.allreduce(comm::View{loss.data(), 1, comm::DType::kExact128}, comm::ReduceOp::kSum);
      comm.allreduce(comm::View{ints, 2, comm::DType::kI64}, comm::ReduceOp::kSum);
      test_loss = loss.valid() ? loss.value(0) / static_cast<double>(ints[1]) : INFINITY;
      if (problem->has_accuracy()) accuracy = static_cast<double>(ints[0]) / ints[1];
      extra = problem->extra_metrics(x.data());
      last_loss = test_loss;
      last_acc = accuracy;
    }
    pt.eval = seconds_since(t0);

    // Per-phase times: min / avg / max over ranks.
    // The fifth entry: what keeping the start state cost (Note [Stopping mid-round]).
    double tmin[5] = {pt.local, pt.comm, pt.aggregate, pt.eval, keep_cost};
    double tmax[5], tsum[5];
    std::copy(tmin, tmin + 5, tmax);
    std::copy(tmin, tmin + 5, tsum);
    comm.allreduce(comm::View{tmin, 5, comm::DType::kF64}, comm::ReduceOp::kMin);
    comm.allreduce(comm::View{tmax, 5, comm::DType::kF64}, comm::ReduceOp::kMax);
    comm.allreduce(comm::View{tsum, 5, comm::DType::kF64}, comm::ReduceOp::kSum);
    last_local_max = tmax[0];
    if (kept) keep_cost_max = tmax[4];
    kept.reset();
    const bool interrupted =
        comm.allreduce_scalar(static_cast<std::int64_t>(g_interrupt), comm::ReduceOp::kMax) != 0;

    const auto bits = static_cast<double>(exchange->uplink_bits());
    const double bits_down = static_cast<double>(down_bits) * static_cast<double>(sampled.size());
    if (root) {
      out->append("round", static_cast<std::int64_t>(t + 1));  // 1-based, as printed
      out->append("clients", static_cast<std::int64_t>(sampled.size()));
      out->append("train_loss", train_loss);
      out->append("test_loss", test_loss);
      out->append("test_accuracy", accuracy);
      for (std::size_t i = 0; i < extra.size(); ++i) out->append(extra_names[i], extra[i]);
      out->append("uplink_bits", bits);
      out->append("downlink_bits", bits_down);
      // Per-client rows cover the sampled clients only (Note [Population scale]).
      out->append_client_row("sampled", std::vector<std::int64_t>(sampled.begin(), sampled.end()));
      out->append_client_row("uplink_bits", exchange->client_bits());
      out->append("byzantine_sampled", static_cast<std::int64_t>(behaviour->sampled_byzantine()));
      if (behaviour->attacking()) out->append("agg_dist_honest_mean", dist_honest);
      const auto& rep = exchange->report();
      out->append("dropped_nonfinite", static_cast<std::int64_t>(rep.dropped_nonfinite));
      if (selecting_rule) {
        std::vector<std::int64_t> chosen(sampled.size(), 0);
        for (int c : rep.selected)
          chosen[static_cast<std::size_t>(std::lower_bound(sampled.begin(), sampled.end(), c) -
                                          sampled.begin())] = 1;
        out->append_client_row("selected", chosen);
      }
      const char* names[4] = {"local", "comm", "aggregate", "eval"};
      for (int i = 0; i < 4; ++i) {
        out->append(fmt::format("time_{}_min", names[i]), tmin[i]);
        out->append(fmt::format("time_{}_avg", names[i]), tsum[i] / ranks);
        out->append(fmt::format("time_{}_max", names[i]), tmax[i]);
      }
      out->append("time_round", seconds_since(round_start));
      const bool show = progress_every > 0 && ((t + 1) % progress_every == 0 || last);
      // A round announced on the terminal is in the published file before it is announced
      // (Note [Crash-consistent results file]); the others may be published in batches.
      out->flush(show || !diverged.empty());
      if (show || !diverged.empty()) {
        const double elapsed = seconds_since(t_start);
        const double per = elapsed / static_cast<double>(t + 1);
        std::string line = fmt::format("round {:>{}}/{} | train_loss {:.4f}", t + 1,
                                       std::to_string(rounds).size(), rounds, train_loss);
        if (!std::isnan(test_loss)) line += fmt::format(" | test_loss {:.4f}", test_loss);
        if (!std::isnan(accuracy)) line += fmt::format(" | acc {:.2f}%", 100 * accuracy);
        for (std::size_t i = 0; i < extra.size(); ++i)
          if (!std::isnan(extra[i])) line += fmt::format(" | {} {:.3g}", extra_names[i], extra[i]);
        line += fmt::format(" | up {} | {:.2f} s/round | ETA {}", human_bits(bits), per,
                            human_seconds(per * static_cast<double>(rounds - t - 1)));
        fmt::print("{}\n", line);
        std::fflush(stdout);
      }
    }
    result.rounds_done = t + 1;
    if (!diverged.empty()) {
      result.status = "diverged";
      result.message = diverged;
      break;
    }
    if (interrupted || (ck.every > 0 && ((t + 1) % ck.every == 0 || last)))
      save_checkpoint(t + 1, nullptr);
    if (interrupted && !last) {
      result.status = "preempted";
      result.message = fmt::format("interrupted by a signal after round {} of {}", t + 1, rounds);
      break;
    }
  }

  } catch (const std::exception& e) {
    // A failure on this rank: leave a readable file that says so, then let main abort the job.
    if (root) out->set_status("failed", e.what());
    throw;
  }

  result.final_test_loss = last_loss;
  result.final_model = x;
  result.final_accuracy = last_acc;
  const double rss = peak_rss_mib();
  const double rss_max = comm.allreduce_scalar(rss, comm::ReduceOp::kMax);
  if (root) {
    if (cfg.get_bool("output.save_model") && result.status != "diverged") {
      for (const auto& l : problem->layers())
        out->write_matrix("/model/" + l.name, x.data() + l.offset, l.rows, l.cols);
    }
    out->set_attribute("peak_rss_mib_max", rss_max);
    out->set_attribute("wall_seconds", seconds_since(t_start));
    out->set_attribute("rounds_done", static_cast<std::int64_t>(result.rounds_done));
    out->set_status(result.status, result.message);
    if (result.status == "completed") {
      fmt::print("completed {} rounds in {:.1f} s", result.rounds_done, seconds_since(t_start));
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
