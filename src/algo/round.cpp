#include "algo/round.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>

#include <fmt/format.h>

#include "algo/interrupt.h"
#include "algo/sampling.h"
#include "core/exact_sum.h"
#include "core/rng.h"
#include "robust/aggregator.h"

namespace cohort::algo {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The percentile p (in [0, 100]) of sorted values by linear interpolation between the closest
// ranks (numpy's default): position p/100 (n - 1).
double percentile(const std::vector<double>& sorted, double p) {
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

// Note [q-FFL]
// aggregator qffl (docs/algorithms.md §8; Li et al. 2020, q-FedAvg): with L = 1/eta_l, u_i = x - y_i
// the client's message and F_i = F_i(x) its loss over its training samples at the round's x,
// x <- x - sum_i F_i^q L u_i / sum_i h_i, h_i = q F_i^(q-1) L^2 |u_i|^2 + L F_i^q. Dividing both
// sums by L, this is the exchange's weighted mean with weight F_i^q per client and total weight
// sum_i (q F_i^(q-1) L |u_i|^2 + F_i^q); the round computes the weights from the clients' losses
// and all-reduces the total as an exact sum before the exchange finishes, so the result is the
// same at any rank count, and q = 0 (weights 1, total = clients) is fedavg's plain mean bit for
// bit. The server optimizer then steps with that aggregate (sgd with lr 1: the definition).
// |u_i|^2 is taken of the message as sent to the compressor.
//
// Note [IFCA rounds]
// personalization ifca keeps k cluster models in RunState::clusters. Every sampled client
// receives all k (k d floats of downlink), evaluates each on its training samples, picks the
// lowest loss, and runs the algorithm (fedavg or fedprox) from that model; its message goes to
// that cluster's exchange, so each cluster's aggregate is the (weighted) mean over the clients
// that picked it, and the cluster's server optimizer steps with it. A model nobody picked stays
// as it was. Each exchange is a full all-reduce of its own, so the result is the same at any
// rank count; uplink bits are those of the messages actually sent. Cluster 0 starts at the run's
// initial model, cluster j at init variant j (another draw from the seed) plus N(0, s^2) noise
// per weight (personalization.init_spread s), so that models with a deterministic initializer
// (logreg's zeros) start apart and the clients split between them as in the IFCA paper's random
// starts. The test-set metrics are those of RunState::x, the model most clients picked in the
// round.
//
// The cluster model with the lowest loss on client c's training samples (the
// lowest index among ties; a NaN loss never wins).
template <class Cluster>
int pick_cluster(Problem& problem, int c, Cluster cluster, int k) {
  int best = 0;
  double best_loss = problem.client_loss(c, cluster(0));
  for (int j = 1; j < k; ++j) {
    const double l = problem.client_loss(c, cluster(j));
    if (l < best_loss || (std::isnan(best_loss) && !std::isnan(l))) {
      best = j;
      best_loss = l;
    }
  }
  return best;
}

}  // namespace

// docs/algorithms.md §8: mean, population standard deviation, 10th/50th/90th percentiles and
// minimum of the clients' accuracies, each client weighted equally.
ClientAccuracyStats client_accuracy_stats(const std::vector<float>& acc) {
  ClientAccuracyStats s;
  if (acc.empty()) return s;
  std::vector<double> v(acc.begin(), acc.end());
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double a : v) sum += a;
  s.mean = sum / static_cast<double>(v.size());
  double ss = 0;
  for (double a : v) ss += (a - s.mean) * (a - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(v.size()));
  s.p10 = percentile(v, 10);
  s.p50 = percentile(v, 50);
  s.p90 = percentile(v, 90);
  s.min = v.front();
  return s;
}

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
  qffl_ = rule == AggregatorKind::kQffl;
  poisson_ = cfg.get_string("clients.sampling") == "poisson";
  q_sampling_ = cfg.get_float("clients.fraction");
  if (qffl_) q_ = cfg.get_float("aggregator.q");
  client_eval_ = cfg.get_bool("eval.clients");
  nodes_every_ = cfg.get_int("eval.nodes_every");
  l2_ = cfg.get_float("eval.l2");
  secagg_options_ = privacy::SecaggOptions::from_config(cfg);
}

Round::Result Round::execute(RunState& s, bool may_abandon, double keep_cost) {
  // A decentralized round never abandons its local work: it is short by design (one gossip step),
  // and the nodes' models change in place.
  if (s.network) return execute_decentralized(s, keep_cost);
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
  // Note [Poisson sampling]: a varying sample, possibly empty; s.per_round is then its bound.
  const Sampling sampling{poisson_, q_sampling_, s.per_round};
  const std::vector<int> sampled = sampling.sample(seed_, round, s.num_clients);
  const bool nobody = sampled.empty();  // only under Poisson sampling: nothing is exchanged
  const privacy::DpOptions& dp = s.dp;
  // Note [Personal models] (algo/personalization.h) and [IFCA rounds] below.
  const PersonalizationOptions& po = s.personal.front()->options();
  const bool local_only = po.kind == PersonalizationKind::kLocal;
  const bool ditto = po.kind == PersonalizationKind::kDitto;
  const int k_clusters = s.clusters.empty() ? 0 : po.clusters;
  // Cluster j's exchange (ifca), or the run's.
  auto exchange_of = [&](int j) -> exchange::Exchange& {
    return j == 0 ? ex : *s.cluster_exchanges[static_cast<std::size_t>(j - 1)];
  };
  auto cluster = [&](int j) { return s.clusters.data() + static_cast<std::size_t>(j) * s.x.size(); };

  // Note [Secure aggregation]: the protocol's keys and shares among the round's clients.
  const bool secure = secagg_options_.enabled && !nobody;
  if (secagg_options_.enabled && !secagg_)
    secagg_ = std::make_unique<privacy::SecureAggregation>(secagg_options_, comm_, seed_, d);
  // Local work on the clients this rank owns.
  auto t0 = Clock::now();
  if (secure) secagg_->begin_round(round, sampled, s.mine.begin, s.mine.end);
  std::int64_t down_bits = 0;
  std::int64_t secagg_nonfinite = 0;  // a submitted update held a non-finite value (this rank)
  std::span<const float> x_client(s.x);
  if (!local_only) {  // local: nothing is sent
    x_client = s.downlink->broadcast(s.x, round, &down_bits);
    // ifca sends all k models (uncompressed: PersonalizationOptions refuses a downlink
    // compressor).
    if (k_clusters > 0) down_bits *= k_clusters;
  }
  if (!nobody) ex.begin_round(round, sampled);  // (an empty list would mean every client)
  for (auto& e : s.cluster_exchanges) e->begin_round(round, sampled);
  ex.set_validation(
      [&, round](const float* y) { return problem.server_loss(y, seed_, round, zeno_batch_); },
      s.x.data());
  // Train-loss sum, clients that trained, qffl's sum of h_i / L, ditto's personal-loss sum.
  ExactAccumulator scalars(4);
  // ifca: per cluster, the weight of the clients that picked it; and how many did.
  ExactAccumulator cluster_weight(static_cast<std::size_t>(std::max(k_clusters, 1)));
  std::vector<std::int64_t> cluster_count(static_cast<std::size_t>(std::max(k_clusters, 1)), 0);
  double total_weight = 0;
  behaviour.begin_round(round, sampled);
  auto weight = [&](int c) { return weighted_ ? static_cast<double>(counts_[c]) : 1.0; };
  std::vector<int> training;  // this rank's sampled clients that train, in sampled order
  for (int c : sampled) {
    if (behaviour.sends(c)) total_weight += weight(c);
    if (s.mine.owns(c) && behaviour.trains(c)) training.push_back(c);
  }
  // Note [DP-FedAvg]: the fixed denominator q N, whatever the round's sample.
  if (dp.enabled) total_weight = dp.denominator();
  // Windows of T clients train in parallel, each into its own buffer; their messages are then
  // processed and submitted in client order on this thread (Note [Client threads]).
  const int threads = s.workers->size();
  msgs_.resize(static_cast<std::size_t>(threads));
  results_.resize(static_cast<std::size_t>(threads));
  for (auto& m : msgs_) m.resize(message_size);
  losses_.resize(static_cast<std::size_t>(threads));
  personal_loss_.resize(static_cast<std::size_t>(threads));
  picks_.assign(static_cast<std::size_t>(threads), 0);
  const double inv_lr = qffl_ ? 1.0 / s.algorithms.front()->local_lr(round) : 0.0;  // L
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
  if (s.anchor && !local_only && !nobody) {
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
        const auto w = static_cast<std::size_t>(worker);
        const auto i = static_cast<std::size_t>(task);
        if (local_only) {  // the personal model's steps, and no message
          results_[i] = ClientResult{s.personal[w]->update(problem, c, round, s.x.data()), 0};
          return;
        }
        const float* xc = x_client.data();
        if (k_clusters > 0) {  // Note [IFCA rounds]: the model with the lowest training loss
          const int best = pick_cluster(problem, c, cluster, k_clusters);
          picks_[i] = best;
          xc = cluster(best);
        }
        results_[i] = s.algorithms[w]->client_message(problem, c, round, xc, msgs_[i].data());
        if (qffl_) losses_[i] = problem.client_loss(c, xc);  // F_c(x)
        if (ditto) personal_loss_[i] = s.personal[w]->update(problem, c, round, xc);
      },
      [&](int c, int task) {
        const auto i = static_cast<std::size_t>(task);
        scalars.add_at(0, results_[i].train_loss);
        scalars.add_at(1, 1.0);
        if (local_only) return;
        auto& m = msgs_[i];
        behaviour.process(c, m);  // worker momentum, then the attack of a Byzantine client
        double w = weight(c);
        if (qffl_) {  // Note [q-FFL]
          const double f = losses_[i];
          double u2 = 0;
          for (std::int64_t j = 0; j < d; ++j) u2 += static_cast<double>(m[j]) * m[j];
          w = std::pow(f, q_);
          scalars.add_at(2, (q_ > 0 ? q_ * std::pow(f, q_ - 1) * inv_lr * u2 : 0.0) + w);
        }
        if (ditto) scalars.add_at(3, personal_loss_[i]);
        if (dp.enabled) {  // Note [DP-FedAvg]: clip, and the client's share of distributed noise
          privacy::clip_update(m.data(), problem.layers(), dp.clip, dp.per_layer);
          if (dp.distributed) {
            const double sd = dp.sigma * dp.clip / std::sqrt(static_cast<double>(sampled.size()));
            Rng noise(seed_, round, static_cast<std::uint32_t>(c), Purpose::kPrivacyNoise);
            for (std::int64_t j = 0; j < d; ++j) m[j] = static_cast<float>(m[j] + sd * noise.normal());
          }
        }
        if (secure) {  // Note [Secure aggregation]: quantized, masked, summed mod 2^32
          if (!dp.enabled)  // its own bound C, flat
            privacy::clip_update(m.data(), problem.layers(), secagg_options_.clip, false);
          // The protocol quantizes a non-finite value to a finite one; that such a value was
          // submitted is all-reduced as one bit below, so the round still counts as diverged.
          if (!std::all_of(m.begin(), m.begin() + d, [](float v) { return std::isfinite(v); }))
            secagg_nonfinite = 1;
          secagg_->submit(c, std::span<const float>(m.data(), static_cast<std::size_t>(d)));
          return;
        }
        exchange_of(picks_[i]).submit(c, m, w, behaviour.byzantine(c));
        if (k_clusters > 0) {
          cluster_weight.add_at(static_cast<std::size_t>(picks_[i]), w);
          ++cluster_count[static_cast<std::size_t>(picks_[i])];
        }
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
  comm_.allreduce(comm::View{scalars.data(), 4, comm::DType::kExact128}, comm::ReduceOp::kSum);
  const bool losses_valid = comm_.allreduce_scalar(static_cast<std::int64_t>(scalars.valid()),
                                                   comm::ReduceOp::kMin) == 1;
  // Note [q-FFL]: the mean's denominator is sum_i h_i / L over every rank's clients.
  if (qffl_) total_weight = losses_valid ? scalars.value(2) : INFINITY;
  // q-FFL's weights F_i^q and its denominator must be finite and the denominator positive: a
  // client with F_i = 0 at q < 1 (F^(q-1) = inf), or every F_i = 0, leaves the step undefined.
  const bool qffl_undefined = qffl_ && !(total_weight > 0 && std::isfinite(total_weight));
  bool valid = !qffl_undefined;
  bool secagg_aborted = false;
  // ifca: each cluster's aggregate, into g_ one after the other (Note [IFCA rounds]).
  std::vector<std::vector<float>> cluster_g;
  if (local_only) {
    // nothing was sent
  } else if (k_clusters > 0) {
    comm_.allreduce(comm::View{cluster_weight.data(), k_clusters,
                               comm::DType::kExact128},
                    comm::ReduceOp::kSum);
    comm_.allreduce(comm::View{cluster_count.data(), k_clusters,
                               comm::DType::kI64},
                    comm::ReduceOp::kSum);
    cluster_g.resize(static_cast<std::size_t>(k_clusters));
    for (int j = 0; j < k_clusters; ++j) {
      auto& gj = cluster_g[static_cast<std::size_t>(j)];
      gj.resize(static_cast<std::size_t>(d));
      const bool picked = cluster_count[static_cast<std::size_t>(j)] > 0;
      // A model nobody picked receives an empty sum (finish is collective, so it still runs).
      const bool ok = exchange_of(j).finish(
          gj.data(), picked ? cluster_weight.value(static_cast<std::size_t>(j)) : 1.0);
      valid = valid && (ok || !picked);
    }
    valid = valid && cluster_weight.valid();
  } else if (nobody) {
    std::fill(g_.begin(), g_.end(), 0.0f);  // no client: an empty sum
  } else if (secure) {
    // Note [Secure aggregation]: the unmasked sum of the survivors' quantized updates, divided
    // by q N (DP) or by the survivors' count; an aborted round leaves the model as it is.
    secagg_aborted = !secagg_->finish();
    valid = comm_.allreduce_scalar(secagg_nonfinite, comm::ReduceOp::kMax) == 0 && valid;
    if (!dp.enabled) total_weight = secagg_->report().survivors;
    if (!secagg_aborted) secagg_->decode(g_.data(), total_weight);
  } else {
    valid = ex.finish(g_.data(), qffl_undefined ? 1.0 : total_weight) && valid;
  }
  if (dp.enabled && !dp.distributed && valid && !secagg_aborted) {
    // Note [DP-FedAvg]: the server's N(0, sigma^2 C^2) on the sum, divided like the sum.
    const double sd = dp.sigma * dp.clip / dp.denominator();
    Rng noise(seed_, round, kGlobalClient, Purpose::kPrivacyNoise);
    for (std::int64_t j = 0; j < d; ++j) g_[j] = static_cast<float>(g_[j] + sd * noise.normal());
  }
  valid = valid && anchor_valid && losses_valid;
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
  if (!valid && qffl_undefined) {
    rec.diverged = fmt::format("round {}: q-FFL's step is undefined: sum_i h_i / L = {} (a "
                               "client's loss F_i(x) is 0 with q < 1, or every F_i(x) is 0, "
                               "or a loss is not finite)",
                               t + 1, total_weight);
  } else if (!valid) {
    rec.diverged = local_only
                       ? fmt::format("round {}: a client's personal training loss is no longer "
                                     "finite", t + 1)
                       : fmt::format("round {}: a client message was not finite or exceeded "
                                     "2^40", t + 1);
  } else if (local_only) {
    // the global model stays the initial one
  } else if (secagg_aborted) {
    // fewer survivors than the threshold: nothing was unmasked, the model stays
    if (comm_.rank() == 0)
      fmt::print(stderr,
                 "cohort: warning: round {}: secure aggregation aborted: {} of {} clients "
                 "survived, below the threshold {}; the model is unchanged\n",
                 t + 1, secagg_->report().survivors, secagg_->report().clients,
                 secagg_->report().threshold);
  } else if (k_clusters > 0) {
    // Each picked model steps with its own optimizer; x becomes the model most clients picked
    // (the lowest index among ties).
    int largest = 0;
    for (int j = 0; j < k_clusters; ++j) {
      const auto jj = static_cast<std::size_t>(j);
      if (cluster_count[jj] == 0) continue;
      ServerOptimizer& opt = j == 0 ? *s.server : *s.cluster_servers[jj - 1];
      opt.step(cluster(j), cluster_g[jj].data(), d, server_lr_.at(t));
      if (cluster_count[jj] > cluster_count[static_cast<std::size_t>(largest)]) largest = j;
    }
    std::copy_n(cluster(largest), d, s.x.data());
    if (!std::all_of(s.clusters.begin(), s.clusters.end(), [](float v) { return std::isfinite(v); }))
      rec.diverged = fmt::format("round {}: a cluster model is no longer finite", t + 1);
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
  // Note [Iterate averaging]: the new model joins the average (not after a diverged round).
  if (rec.diverged.empty()) s.average.add(s.x, t + 1);
  phase[2] = seconds_since(t0);

  // Evaluation (test set, then the clients' own test sets).
  t0 = Clock::now();
  const bool evaluate = evaluates(t, rec);
  evaluate_test_set(s, evaluate, rec);
  if (ditto) {
    rec.extra_names.push_back("personal_train_loss");
    rec.extra.push_back(losses_valid ? scalars.value(3) / std::max(1.0, scalars.value(1))
                                     : INFINITY);
  }
  if (client_eval_) {
    const bool with_global = po.personal_eval() && k_clusters == 0;
    ClientAccuracyStats own, global;
    if (evaluate) {
      evaluate_clients(s, round, k_clusters, with_global);
      own = client_accuracy_stats(client_acc_);
      if (with_global) global = client_accuracy_stats(global_client_acc_);
    }
    auto put = [&](const std::string& prefix, const ClientAccuracyStats& st) {
      const std::pair<const char*, double> v[] = {{"mean", st.mean}, {"std", st.std},
                                                  {"p10", st.p10},   {"p50", st.p50},
                                                  {"p90", st.p90},   {"min", st.min}};
      for (const auto& [name, value] : v) {
        rec.extra_names.push_back(prefix + name);
        rec.extra.push_back(value);
      }
    };
    put("client_acc_", own);
    if (with_global) put("global_client_acc_", global);
  }
  phase[3] = seconds_since(t0);

  record_phases(phase, keep_cost, res);

  rec.round = t + 1;
  rec.sampled.assign(sampled.begin(), sampled.end());
  rec.uplink_bits = nobody ? 0.0 : static_cast<double>(ex.uplink_bits() + anchor_bits);
  for (const auto& e : s.cluster_exchanges) rec.uplink_bits += static_cast<double>(e->uplink_bits());
  // The algorithm's server state goes to every sampled client as float32 besides the model
  // (Note [Message parts]).
  if (!local_only) down_bits += 32 * s.algorithms.front()->server_state_sent();
  rec.downlink_bits = static_cast<double>(down_bits) * static_cast<double>(sampled.size());
  rec.client_bits = nobody ? std::vector<std::int64_t>{} : ex.client_bits();
  for (const auto& e : s.cluster_exchanges)  // ifca: a client sent to one cluster's exchange
    for (std::size_t i = 0; i < rec.client_bits.size() && i < e->client_bits().size(); ++i)
      rec.client_bits[i] += e->client_bits()[i];
  if (local_only) {
    rec.uplink_bits = 0;
    rec.client_bits.assign(sampled.size(), 0);
  }
  for (std::size_t i = 0; i < anchor_client_bits.size() && i < rec.client_bits.size(); ++i)
    rec.client_bits[i] += anchor_client_bits[i];
  rec.byzantine_sampled = behaviour.sampled_byzantine();
  if (dp.accounted()) {  // the accountant after t + 1 rounds (Note [RDP accountant])
    rec.extra_names.push_back("epsilon");
    rec.extra.push_back(dp.epsilon_after(t + 1));
  }
  if (secagg_options_.enabled) {  // Note [Secure aggregation]: what the protocol did and cost
    privacy::SecaggReport r;
    if (secure) r = secagg_->report();
    const std::pair<const char*, double> v[] = {
        {"secagg_survivors", r.survivors},
        {"secagg_responders", r.responders},
        {"secagg_threshold", r.threshold},
        {"secagg_aborted", r.aborted ? 1.0 : 0.0},
        {"secagg_client_bytes_sent", r.mean_sent},
        {"secagg_client_bytes_received", r.mean_received},
        {"secagg_server_bytes_sent", r.server_sent},
        {"secagg_server_bytes_received", r.server_received},
        {"secagg_transcript", static_cast<double>(r.transcript)},
        {"time_secagg_keys", r.time_keys},
        {"time_secagg_shares", r.time_shares},
        {"time_secagg_masking", r.time_masking},
        {"time_secagg_unmasking", r.time_unmasking}};
    for (const auto& [name, value] : v) {
      rec.extra_names.push_back(name);
      rec.extra.push_back(value);
    }
    if (secure) {  // the protocol's bytes are the uplink (Note [Secure aggregation])
      rec.client_bits.assign(r.client_sent.size(), 0);
      double bits = 0;
      for (std::size_t i = 0; i < r.client_sent.size(); ++i) {
        rec.client_bits[i] = 8 * r.client_sent[i];
        bits += 8.0 * static_cast<double>(r.client_sent[i]);
      }
      rec.uplink_bits = bits;
    }
  }
  if (poisson_) {  // fixed-width per-client rows (Note [Poisson sampling])
    rec.clients = static_cast<std::int64_t>(sampled.size());
    rec.sampled.resize(static_cast<std::size_t>(s.per_round), -1);
    rec.client_bits.resize(static_cast<std::size_t>(s.per_round), 0);
  }
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

// Note [Per-client evaluation]
// eval.clients: every rank evaluates the clients of its block (all of them, sampled or not) on
// their local test sets (Note [Client test sets] in algo/problem.cpp), spread over the client
// threads; each client's accuracy is correct / count on its own rows, computed by one thread
// alone, so it does not depend on the rank count, and the ranks' blocks are all-gathered in
// client order. A client is evaluated with the model it uses: the global model, its personal
// model (local, ditto; the finetuned global model for finetune) or, for ifca, the cluster
// model with the lowest loss on its training samples. With personal models the global model is
// evaluated as well (with_global). O(population / ranks) work per evaluation.
void Round::evaluate_clients(RunState& s, std::uint32_t round, int k_clusters, bool with_global) {
  Problem& problem = *s.problem;
  const int n = s.mine.end - s.mine.begin;
  const std::size_t d = s.x.size();
  const PersonalizationOptions& po = s.personal.front()->options();
  eval_models_.resize(static_cast<std::size_t>(s.workers->size()));
  std::vector<float> own(static_cast<std::size_t>(n)), global(with_global ? n : 0);
  auto accuracy = [](const EvalSums& e) {
    return e.count > 0 ? static_cast<float>(static_cast<double>(e.correct) /
                                            static_cast<double>(e.count))
                       : NAN;
  };
  s.workers->run(n, [&](int i, int worker) {
    const int c = s.mine.begin + i;
    const auto ii = static_cast<std::size_t>(i);
    if (k_clusters > 0) {
      auto cluster = [&](int j) { return s.clusters.data() + static_cast<std::size_t>(j) * d; };
      own[ii] = accuracy(problem.evaluate_client(c, cluster(pick_cluster(problem, c, cluster,
                                                                         k_clusters))));
    } else if (po.personal_eval()) {
      auto& model = eval_models_[static_cast<std::size_t>(worker)];
      model.resize(d);
      s.personal[static_cast<std::size_t>(worker)]->personal_model(problem, c, round, s.x.data(),
                                                                   model.data());
      own[ii] = accuracy(problem.evaluate_client(c, model.data()));
    } else {
      own[ii] = accuracy(problem.evaluate_client(c, s.x.data()));
    }
    if (with_global) global[ii] = accuracy(problem.evaluate_client(c, s.x.data()));
  });
  auto gather = [&](const std::vector<float>& mine, std::vector<float>& all) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(mine.data());
    const auto parts =
        comm_.allgather_bytes(std::span<const std::uint8_t>(p, mine.size() * sizeof(float)));
    all.clear();
    for (const auto& part : parts) {
      const std::size_t m = part.size() / sizeof(float);
      const std::size_t at = all.size();
      all.resize(at + m);
      std::memcpy(all.data() + at, part.data(), m * sizeof(float));
    }
  };
  gather(own, client_acc_);
  if (with_global) gather(global, global_client_acc_);
}

Round::Result Round::execute_decentralized(RunState& s, double keep_cost) {
  const long long t = s.round;
  const auto round = static_cast<std::uint32_t>(t);
  Problem& problem = *s.problem;
  decentral::Network& net = *s.network;
  Result res;
  metrics::RoundRecord& rec = res.record;
  double phase[4] = {};
  set_local_work_abandonable(false);
  const std::vector<int> active = sample_clients(seed_, round, s.num_clients, s.per_round);

  // The network's phases (Note [Decentralized rounds]): local work, the exchange between ranks
  // and the gossip within the rank.
  decentral::Network::RoundResult r = net.step(round, active, *s.workers);
  phase[0] = r.seconds_local;
  phase[1] = r.seconds_exchange;
  phase[2] = r.seconds_mix;

  // The metrics (timed with the evaluation): the average model, the consensus distance and the
  // round's sums over ranks.
  auto t0 = Clock::now();
  ExactAccumulator scalars(2);  // train-loss sum, nodes that trained
  for (double l : r.losses) scalars.add_at(0, l);  // one exact term per node: order-free
  scalars.add_at(1, static_cast<double>(r.losses.size()));
  comm_.allreduce(comm::View{scalars.data(), 2, comm::DType::kExact128}, comm::ReduceOp::kSum);
  std::int64_t ints[2] = {r.bits, r.valid ? 0 : 1};
  comm_.allreduce(comm::View{ints, 2, comm::DType::kI64}, comm::ReduceOp::kSum);
  comm_.allreduce(comm::View{r.node_bits.data(), static_cast<std::int64_t>(r.node_bits.size()),
                             comm::DType::kI64},
                  comm::ReduceOp::kSum);
  const double consensus = net.average(s.x.data());
  phase[3] = seconds_since(t0);
  if (ints[1] > 0 || !std::isfinite(consensus))
    rec.diverged = fmt::format("round {}: a node's model is no longer finite", t + 1);
  const double trained = scalars.value(1);
  rec.train_loss = !scalars.valid() ? INFINITY : trained > 0 ? scalars.value(0) / trained : NAN;

  // Evaluation: the average model on the test set (chunks over ranks, exact sums), and every
  // eval.nodes_every rounds each node's own model.
  t0 = Clock::now();
  const bool last = t + 1 == rounds_;
  evaluate_test_set(s, evaluates(t, rec), rec);
  rec.extra_names.push_back("consensus_distance");
  rec.extra.push_back(consensus);
  rec.extra_names.push_back("bits_per_node");
  rec.extra.push_back(static_cast<double>(ints[0]) / static_cast<double>(active.size()));
  if (nodes_every_ > 0 && problem.has_accuracy()) {
    double mean = NAN, worst = NAN;
    if (rec.diverged.empty() && (last || (t + 1) % nodes_every_ == 0)) {
      // Each node's accuracy on the whole test set, its chunks summed in order on one thread.
      const int n = s.mine.end - s.mine.begin;
      std::vector<double> acc(static_cast<std::size_t>(n));
      s.workers->run(n, [&](int i, int) {
        const float* x = net.node_model(s.mine.begin + i);
        std::int64_t correct = 0, count = 0;
        for (std::int64_t c = 0; c < problem.num_eval_chunks(); ++c) {
          const EvalSums e = problem.evaluate_chunk(x, c);
          correct += e.correct;
          count += e.count;
        }
        acc[static_cast<std::size_t>(i)] = static_cast<double>(correct) / static_cast<double>(count);
      });
      ExactAccumulator sum(1);
      double lowest = INFINITY;
      for (double a : acc) {
        sum.add_at(0, a);
        lowest = std::min(lowest, a);
      }
      comm_.allreduce(comm::View{sum.data(), 1, comm::DType::kExact128}, comm::ReduceOp::kSum);
      mean = sum.value(0) / s.num_clients;
      worst = comm_.allreduce_scalar(lowest, comm::ReduceOp::kMin);
    }
    rec.extra_names.push_back("node_acc_mean");
    rec.extra.push_back(mean);
    rec.extra_names.push_back("node_acc_min");
    rec.extra.push_back(worst);
  }
  phase[3] += seconds_since(t0);

  record_phases(phase, keep_cost, res);
  rec.round = t + 1;
  rec.sampled.assign(active.begin(), active.end());
  rec.uplink_bits = static_cast<double>(ints[0]);
  rec.downlink_bits = 0;
  rec.client_bits = std::move(r.node_bits);
  rec.local_lr = net.local_lr(round);
  rec.server_lr = NAN;
  s.round = t + 1;
  return res;
}

bool Round::evaluates(long long t, const metrics::RoundRecord& rec) const {
  return rec.diverged.empty() &&
         (t + 1 == rounds_ || (eval_every_ > 0 && (t + 1) % eval_every_ == 0));
}

// Evaluation of x on the test set in fixed chunks spread over ranks and the client threads;
// exact sums, so in any order. Sets the problem's extra metrics (NaN when not evaluating).
void Round::evaluate_test_set(RunState& s, bool evaluate, metrics::RoundRecord& rec) {
  Problem& problem = *s.problem;
  const int rank = comm_.rank(), ranks = comm_.size();
  rec.extra_names = problem.extra_metric_names();
  rec.extra.assign(rec.extra_names.size(), NAN);
  if (l2_ > 0) {
    rec.extra_names.push_back("objective");
    rec.extra.push_back(NAN);
  }
  if (!evaluate) return;
  const float* model = s.x.data();
  if (s.average.any()) {  // Note [Iterate averaging]
    s.average.read(averaged_);
    model = averaged_.data();
  }
  ExactAccumulator loss(1);
  std::int64_t ints[2] = {0, 0};
  const std::int64_t chunks = problem.num_eval_chunks();
  const std::int64_t mine = chunks > rank ? (chunks - rank + ranks - 1) / ranks : 0;
  std::vector<EvalSums> parts(static_cast<std::size_t>(mine));
  s.workers->run(static_cast<int>(mine), [&](int i, int) {
    parts[static_cast<std::size_t>(i)] =
        problem.evaluate_chunk(model, rank + static_cast<std::int64_t>(i) * ranks);
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
  rec.extra = problem.extra_metrics(model);
  if (l2_ > 0) {  // test loss + (λ/2) |x|^2, the norm a double sum in index order
    double norm2 = 0;
    for (std::size_t k = 0; k < s.x.size(); ++k)
      norm2 += static_cast<double>(model[k]) * static_cast<double>(model[k]);
    rec.extra.push_back(rec.test_loss + 0.5 * l2_ * norm2);
  }
}

// Per-phase times: min / average / max over ranks; the fifth entry is what keeping the start
// state cost (Note [Stopping mid-round]).
void Round::record_phases(const double phase[4], double keep_cost, Result& res) {
  metrics::RoundRecord& rec = res.record;
  double tmin[5] = {phase[0], phase[1], phase[2], phase[3], keep_cost};
  double tmax[5], tsum[5];
  std::copy(tmin, tmin + 5, tmax);
  std::copy(tmin, tmin + 5, tsum);
  comm_.allreduce(comm::View{tmin, 5, comm::DType::kF64}, comm::ReduceOp::kMin);
  comm_.allreduce(comm::View{tmax, 5, comm::DType::kF64}, comm::ReduceOp::kMax);
  comm_.allreduce(comm::View{tsum, 5, comm::DType::kF64}, comm::ReduceOp::kSum);
  for (int i = 0; i < 4; ++i) {
    rec.time_min[i] = tmin[i];
    rec.time_avg[i] = tsum[i] / comm_.size();
    rec.time_max[i] = tmax[i];
  }
  res.local_max = tmax[0];
  res.keep_cost_max = tmax[4];
}

}  // namespace cohort::algo
