#include "algo/round.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "algo/interrupt.h"
#include "algo/sampling.h"
#include "core/exact_sum.h"
#include "robust/aggregator.h"

namespace cohort::algo {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

Round::Round(const Config& cfg, comm::Communicator& comm)
    : comm_(comm),
      seed_(static_cast<std::uint64_t>(cfg.get_int("seed"))),
      rounds_(cfg.get_int("rounds")),
      eval_every_(cfg.get_int("eval.every")),
      server_lr_(ServerOptimizerOptions::from_config(cfg).schedule) {
  using robust::AggregatorKind;
  const AggregatorKind rule = robust::aggregator_kind(cfg.get_string("aggregator.name"));
  weighted_ = rule == AggregatorKind::kMean && cfg.get_bool("aggregator.weighted");
  // Rules whose output is some of the messages: the results file records which.
  selecting_rule_ = rule == AggregatorKind::kKrum || rule == AggregatorKind::kMultikrum ||
                    rule == AggregatorKind::kBulyan || rule == AggregatorKind::kZeno;
  zeno_batch_ = rule == AggregatorKind::kZeno ? static_cast<int>(cfg.get_int("aggregator.batch"))
                                              : 32;
}

Round::Result Round::execute(RunState& s, bool may_abandon, double keep_cost) {
  const int rank = comm_.rank(), ranks = comm_.size();
  const long long t = s.round;
  const auto round = static_cast<std::uint32_t>(t);
  Problem& problem = *s.problem;
  exchange::Exchange& ex = *s.exchange;
  ClientBehaviour& behaviour = *s.behaviour;
  const std::int64_t d = problem.num_params();
  // A message of P parts is P d values (Note [Message parts] in algo/algorithm.h).
  const int parts = s.algorithms.front()->message_parts();
  const std::size_t message_size = static_cast<std::size_t>(parts) * s.x.size();
  g_.resize(message_size);
  if (weighted_ && counts_.empty()) counts_ = problem.sample_counts();  // O(N): once a run
  Result res;
  metrics::RoundRecord& rec = res.record;
  double phase[4] = {};  // local, comm, aggregate, eval on this rank
  set_local_work_abandonable(may_abandon);
  const std::vector<int> sampled = sample_clients(seed_, round, s.num_clients, s.per_round);

  // Local work on the clients this rank owns.
  auto t0 = Clock::now();
  std::int64_t down_bits = 0;
  const std::span<const float> x_client = s.downlink->broadcast(s.x, round, &down_bits);
  ex.begin_round(round, sampled);
  ex.set_validation(
      [&, round](const float* y) { return problem.server_loss(y, seed_, round, zeno_batch_); },
      s.x.data());
  ExactAccumulator scalars(2);  // train-loss sum, clients that trained
  double total_weight = 0;
  behaviour.begin_round(round, sampled);
  auto weight = [&](int c) { return weighted_ ? static_cast<double>(counts_[c]) : 1.0; };
  std::vector<int> training;  // this rank's sampled clients that train, in sampled order
  for (int c : sampled) {
    if (behaviour.sends(c)) total_weight += weight(c);
    if (s.mine.owns(c) && behaviour.trains(c)) training.push_back(c);
  }
  // Windows of T clients train in parallel, each into its own buffer; their messages are then
  // processed and submitted in client order on this thread (Note [Client threads]).
  const int threads = s.workers->size();
  msgs_.resize(static_cast<std::size_t>(threads));
  results_.resize(static_cast<std::size_t>(threads));
  for (auto& m : msgs_) m.resize(message_size);
  // Runs work(c, worker, task) for the training clients T at a time on the client threads (task:
  // the client's buffer in the window), then take(c, task) for each in client order on this
  // thread; stops when local work is abandoned.
  auto in_windows = [&](auto&& work, auto&& take) {
    for (std::size_t first = 0; first < training.size(); first += threads) {
      if (abandon_local_work()) return;
      const int n = static_cast<int>(std::min<std::size_t>(threads, training.size() - first));
      s.workers->run(n, [&](int task, int worker) { work(training[first + task], worker, task); });
      if (abandon_local_work()) return;  // the round is dropped: nothing more is submitted
      for (int task = 0; task < n; ++task) take(training[first + task], task);
    }
  };
  // Whether a rank abandoned its local work, in which case the round is dropped on every rank
  // (Note [Stopping mid-round]). Collective.
  auto dropped = [&] {
    if (!may_abandon || comm_.allreduce_scalar(static_cast<std::int64_t>(local_work_abandoned()),
                                               comm::ReduceOp::kMax) == 0)
      return false;
    set_local_work_abandonable(false);
    res.abandoned = true;
    return true;
  };
  // Note [Anchor gradients] (algo/algorithm.h): the sampled clients' mean gradient at x, on
  // every rank, before any local step.
  bool anchor_valid = true;
  std::int64_t anchor_bits = 0;
  std::vector<std::int64_t> anchor_client_bits;
  if (s.anchor) {
    exchange::Exchange& an = *s.anchor;
    an.begin_round(round, sampled);
    in_windows(
        [&](int c, int worker, int task) {
          s.algorithms[static_cast<std::size_t>(worker)]->anchor_gradient(
              problem, c, round, x_client.data(), msgs_[static_cast<std::size_t>(task)].data());
        },
        [&](int c, int task) {
          an.submit(c,
                    std::span<float>(msgs_[static_cast<std::size_t>(task)].data(),
                                     static_cast<std::size_t>(d)),
                    weight(c));
        });
    if (dropped()) return res;
    anchor_valid = an.finish(g_.data(), total_weight);
    anchor_bits = an.uplink_bits();
    anchor_client_bits = an.client_bits();
    if (anchor_valid) s.algorithms.front()->take_anchor(s.algorithm_state.data(), g_.data());
  }
  // The algorithm's server state, frozen for the round (nullptr: none).
  const float* state = s.algorithm_state.empty() ? nullptr : s.algorithm_state.data();
  for (auto& a : s.algorithms) a->begin_round(state);
  in_windows(
      [&](int c, int worker, int task) {
        results_[static_cast<std::size_t>(task)] =
            s.algorithms[static_cast<std::size_t>(worker)]->client_message(
                problem, c, round, x_client.data(), msgs_[static_cast<std::size_t>(task)].data());
      },
      [&](int c, int task) {
        auto& m = msgs_[static_cast<std::size_t>(task)];
        behaviour.process(c, m);  // worker momentum, then the attack of a Byzantine client
        ex.submit(c, m, weight(c), behaviour.byzantine(c));
        scalars.add_at(0, results_[static_cast<std::size_t>(task)].train_loss);
        scalars.add_at(1, 1.0);
      });
  if (dropped()) return res;
  set_local_work_abandonable(false);  // past the local phase: the round completes
  behaviour.finish_honest(comm_);
  if (behaviour.crafts())  // omniscient attackers send what the honest statistics suggest
    for (int c : sampled)
      if (s.mine.owns(c) && behaviour.byzantine(c)) {
        behaviour.craft(msgs_[0]);
        ex.submit(c, msgs_[0], weight(c), true);
      }
  phase[0] = seconds_since(t0);

  // Exchange: the plan's all-reduce of the message sum (Note [Deterministic sums]).
  t0 = Clock::now();
  bool valid = ex.finish(g_.data(), total_weight) && anchor_valid;
  comm_.allreduce(comm::View{scalars.data(), 2, comm::DType::kExact128}, comm::ReduceOp::kSum);
  const bool losses_valid = comm_.allreduce_scalar(static_cast<std::int64_t>(scalars.valid()),
                                                   comm::ReduceOp::kMin) == 1;
  valid = valid && losses_valid;
  phase[1] = seconds_since(t0);
  // How far the aggregate lands from the honest clients' mean (attacks only).
  if (behaviour.attacking()) {
    double dist = NAN;
    if (valid) {
      const auto& mu = behaviour.honest_mean();
      double s2 = 0;
      for (std::int64_t i = 0; i < d; ++i) s2 += (g_[i] - mu[i]) * (g_[i] - mu[i]);
      dist = std::sqrt(s2);
    }
    rec.dist_honest = dist;
  }

  // Aggregate and server update (identical on every rank).
  t0 = Clock::now();
  if (!valid) {
    rec.diverged = fmt::format("round {}: a client message was not finite or exceeded 2^40", t + 1);
  } else {
    s.server->step(s.x.data(), g_.data(), d, server_lr_.at(t));
    if (!std::all_of(s.x.begin(), s.x.end(), [](float v) { return std::isfinite(v); }))
      rec.diverged = fmt::format("round {}: the global model is no longer finite", t + 1);
    // Parts 1..P-1 of the aggregate and the anchor: the algorithm's server state (Notes
    // [Message parts], [Anchor gradients]); the mean is unweighted there, so total_weight
    // counts the clients that sent.
    if (!s.algorithm_state.empty() && total_weight > 0) {
      s.algorithms.front()->server_update(s.algorithm_state.data(), g_.data() + d, total_weight,
                                          s.num_clients);
      if (rec.diverged.empty() && !std::all_of(s.algorithm_state.begin(), s.algorithm_state.end(),
                                               [](float v) { return std::isfinite(v); }))
        rec.diverged =
            fmt::format("round {}: the algorithm's server state is no longer finite", t + 1);
    }
  }
  // A loss too large for the exact sum (or not finite) is reported as +inf, never as 0.
  rec.train_loss = losses_valid ? scalars.value(0) / std::max(1.0, scalars.value(1)) : INFINITY;
  phase[2] = seconds_since(t0);

  // Evaluation in fixed chunks spread over ranks; sums are exact.
  t0 = Clock::now();
  rec.extra_names = problem.extra_metric_names();
  rec.extra.assign(rec.extra_names.size(), NAN);
  const bool last = t + 1 == rounds_;
  if (rec.diverged.empty() && (last || (eval_every_ > 0 && (t + 1) % eval_every_ == 0))) {
    ExactAccumulator loss(1);
    std::int64_t ints[2] = {0, 0};
    // This rank's chunks, spread over the client threads; exact sums, so in any order.
    const std::int64_t chunks = problem.num_eval_chunks();
    const std::int64_t mine = chunks > rank ? (chunks - rank + ranks - 1) / ranks : 0;
    std::vector<EvalSums> parts(static_cast<std::size_t>(mine));
    s.workers->run(static_cast<int>(mine), [&](int i, int) {
      parts[static_cast<std::size_t>(i)] =
          problem.evaluate_chunk(s.x.data(), rank + static_cast<std::int64_t>(i) * ranks);
    });
    for (const EvalSums& e : parts) {
      loss.add_at(0, e.loss_sum);
      ints[0] += e.correct;
      ints[1] += e.count;
    }
    comm_.allreduce(comm::View{loss.data(), 1, comm::DType::kExact128}, comm::ReduceOp::kSum);
    comm_.allreduce(comm::View{ints, 2, comm::DType::kI64}, comm::ReduceOp::kSum);
    rec.test_loss = loss.valid() ? loss.value(0) / static_cast<double>(ints[1]) : INFINITY;
    if (problem.has_accuracy()) rec.accuracy = static_cast<double>(ints[0]) / ints[1];
    rec.extra = problem.extra_metrics(s.x.data());
  }
  phase[3] = seconds_since(t0);

  // Per-phase times: min / avg / max over ranks; the fifth entry is what keeping the start state
  // cost (Note [Stopping mid-round]).
  double tmin[5] = {phase[0], phase[1], phase[2], phase[3], keep_cost};
  double tmax[5], tsum[5];
  std::copy(tmin, tmin + 5, tmax);
  std::copy(tmin, tmin + 5, tsum);
  comm_.allreduce(comm::View{tmin, 5, comm::DType::kF64}, comm::ReduceOp::kMin);
  comm_.allreduce(comm::View{tmax, 5, comm::DType::kF64}, comm::ReduceOp::kMax);
  comm_.allreduce(comm::View{tsum, 5, comm::DType::kF64}, comm::ReduceOp::kSum);
  for (int i = 0; i < 4; ++i) {
    rec.time_min[i] = tmin[i];
    rec.time_avg[i] = tsum[i] / ranks;
    rec.time_max[i] = tmax[i];
  }
  res.local_max = tmax[0];
  res.keep_cost_max = tmax[4];

  rec.round = t + 1;
  rec.sampled.assign(sampled.begin(), sampled.end());
  rec.uplink_bits = static_cast<double>(ex.uplink_bits() + anchor_bits);
  // The algorithm's server state goes to every sampled client as float32 besides the model
  // (Note [Message parts]).
  down_bits += 32 * s.algorithms.front()->server_state_sent();
  rec.downlink_bits = static_cast<double>(down_bits) * static_cast<double>(sampled.size());
  rec.client_bits = ex.client_bits();
  for (std::size_t i = 0; i < anchor_client_bits.size() && i < rec.client_bits.size(); ++i)
    rec.client_bits[i] += anchor_client_bits[i];
  rec.byzantine_sampled = behaviour.sampled_byzantine();
  rec.local_lr = s.algorithms.front()->local_lr(round);
  rec.server_lr = server_lr_.at(t);
  const auto& rep = ex.report();
  rec.dropped_nonfinite = rep.dropped_nonfinite;
  if (selecting_rule_) {
    std::vector<std::int64_t> chosen(sampled.size(), 0);
    for (int c : rep.selected)
      chosen[static_cast<std::size_t>(std::lower_bound(sampled.begin(), sampled.end(), c) -
                                      sampled.begin())] = 1;
    rec.selected = std::move(chosen);
  }
  s.round = t + 1;
  return res;
}

}  // namespace cohort::algo
