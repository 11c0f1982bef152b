#include "app/attack_privacy_cmd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "algo/problem.h"
#include "algo/sampling.h"
#include "algo/run_schema.h"
#include "app/hdf5_input.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/rng.h"
#include "metrics/results_claim.h"
#include "metrics/results_file.h"
#include "privacy/dp.h"
#include "privacy/dp_sgd.h"
#include "privacy/inference.h"

namespace cohort {

void add_attack_privacy_command(CLI::App& app, AttackPrivacyOptions& o) {
  auto* c = app.add_subcommand("attack-privacy",
                               "inference attacks: gradient inversion of one client's gradient, "
                               "membership inference on a run's final model");
  c->require_subcommand(1);
  auto* inv = c->add_subcommand(
      "invert",
      "reconstruct a client's inputs from its gradient at the initial model (fully connected "
      "first layer), with the config's privacy (none, dp_sgd or dp_fedavg) applied");
  inv->add_option("--config", o.config, "YAML config of the problem")->required();
  inv->add_option("overrides", o.overrides, "dotted key=value overrides of the config");
  inv->add_option("--client", o.client, "the attacked client")->capture_default_str();
  inv->add_option("--batch", o.batch, "its first B samples make the gradient")
      ->capture_default_str();
  inv->add_option("--out", o.out, "HDF5 file for the original and reconstructed inputs")
      ->required();
  auto* mem = c->add_subcommand(
      "membership",
      "loss-threshold membership inference on a run's final model (output.save_model): AUC of "
      "training samples against test samples");
  mem->add_option("--run", o.run, "the run's results file")->required();
  mem->add_option("--samples", o.samples,
                  "members and non-members each: evenly spaced over the clients' samples and the "
                  "test rows (fewer when there are fewer)")
      ->capture_default_str();
}

namespace {

// Note [Gradient inversion]: the first layer must be fully connected on the raw input.
void require_dense_first_layer(const algo::Problem& p, const std::string& model,
                               std::int64_t dim) {
  const auto& l = p.layers();
  const bool dense = l.size() >= 2 && l[0].cols == dim && l[1].rows == l[0].rows &&
                     l[1].cols == 1 && l[1].offset == l[0].offset + l[0].size();
  require_usage(dense, fmt::format("attack-privacy invert needs a fully connected first layer on "
                                   "the {} inputs with a bias (model.name = logreg, mlp, or a "
                                   "model.layers list that starts with linear); model.name = {} "
                                   "starts with {} ({} x {})",
                                   dim, model, l.empty() ? "nothing" : l[0].name,
                                   l.empty() ? 0 : l[0].rows, l.empty() ? 0 : l[0].cols));
}

int invert(const AttackPrivacyOptions& o) {
  const Config cfg = Config::load(o.config, o.overrides, algo::run_schema());
  require_usage(cfg.get_string("data.name") != "quadratic",
                "attack-privacy invert needs data with samples: data.name = quadratic has none");
  require_usage(cfg.get_string("secagg.name") == "none",
                "attack-privacy invert attacks one client's update, which secure aggregation "
                "never shows the server (it sees masked vectors and their sum): set "
                "secagg.name = none to measure what the update itself reveals");
  auto problem = algo::make_problem(cfg);
  const int clients = problem->num_clients();
  require_usage(o.client >= 0 && o.client < clients,
                fmt::format("--client = {} is not allowed: the problem has clients 0..{}",
                            o.client, clients - 1));
  const std::int64_t n = problem->client_samples(o.client);
  require_usage(o.batch >= 1 && o.batch <= n,
                fmt::format("--batch = {} is not allowed: client {} holds {} samples (1..{})",
                            o.batch, o.client, n, n));
  const std::int64_t dim = static_cast<std::int64_t>(problem->sample_input(o.client, 0).size());
  require_dense_first_layer(*problem, cfg.get_string("model.name"), dim);
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  const std::int64_t d = problem->num_params();
  std::vector<float> x(static_cast<std::size_t>(d)), g(static_cast<std::size_t>(d));
  problem->init(x.data(), seed);
  std::vector<std::int64_t> positions(static_cast<std::size_t>(o.batch));
  std::iota(positions.begin(), positions.end(), std::int64_t{0});
  // The client's first local step of round 1, as the run computes it (Notes [DP-SGD],
  // [DP-FedAvg]), on the chosen samples.
  const auto c = static_cast<std::uint32_t>(o.client);
  Rng data_noise(seed, 0, c, Purpose::kDataGeneration);
  const std::string privacy = cfg.get_string("privacy.name");
  std::string what = "no privacy: the mean gradient";
  if (privacy == "dp_sgd") {
    const auto dp = privacy::DpSgdOptions::from_config(cfg);
    privacy::DpSgdSteps steps(dp, seed, 0, o.client, n);
    problem->clipped_loss_grad(o.client, x.data(), positions, dp.clip, steps.denominator(),
                               g.data(), data_noise);
    steps.add_noise(g.data(), d);
    what = dp.describe();
  } else {
    problem->loss_grad(o.client, x.data(), positions, g.data(), data_noise);
    if (privacy == "dp_fedavg") {  // the update of one step, clipped, and its noise
      const auto dp = privacy::DpOptions::from_config(cfg, clients);
      const double lr = cfg.get_float("algorithm.local_lr");
      for (auto& v : g) v = static_cast<float>(lr * v);
      privacy::clip_update(g.data(), problem->layers(), dp.clip, dp.per_layer);
      if (dp.distributed) {
        // What the server receives from this client (Note [DP-FedAvg]): its update with its own
        // share N(0, sigma^2 C^2 / m) of the noise, m the clients of round 1's Poisson sample.
        const auto m = std::max<std::size_t>(
            1, algo::sample_poisson(seed, 0, clients, dp.q).size());
        const double sd = dp.sigma * dp.clip / std::sqrt(static_cast<double>(m));
        Rng noise(seed, 0, c, Purpose::kPrivacyNoise);
        for (auto& v : g) v = static_cast<float>(v + sd * noise.normal());
        what = dp.describe() + fmt::format("; one step's update with its share of the noise "
                                           "(1/{} of the variance)",
                                           m);
      } else {  // central: the server's N(0, sigma^2 C^2) on the sum, here of one update
        Rng noise(seed, 0, kGlobalClient, Purpose::kPrivacyNoise);
        for (auto& v : g) v = static_cast<float>(v + dp.sigma * dp.clip * noise.normal());
        what = dp.describe() + "; on one step's update";
      }
    }
  }
  const LayerView& w = problem->layers()[0];
  const privacy::Reconstruction rec =
      privacy::invert_dense(g.data() + w.offset, g.data() + w.offset + w.size(), w.rows, w.cols);
  require_usage(rec.row >= 0, "every bias gradient of the first layer is 0: nothing to invert");
  std::vector<float> originals;
  std::vector<double> rel, max_abs;
  std::int64_t nearest = 0;
  for (std::int64_t i = 0; i < o.batch; ++i) {
    const auto in = problem->sample_input(o.client, i);
    originals.insert(originals.end(), in.begin(), in.end());
    const auto e = privacy::reconstruction_error(rec.x.data(), in.data(), dim);
    rel.push_back(e.relative);
    max_abs.push_back(e.max_abs);
    if (e.relative < rel[static_cast<std::size_t>(nearest)]) nearest = i;
  }
  const auto k = static_cast<std::size_t>(nearest);
  {
    metrics::ResultsFile out(o.out, metrics::ExistingResults::kReplace, cfg.resolved_text());
    out.set_attribute("attack", std::string("gradient inversion"));
    out.set_attribute("privacy", what);
    out.set_attribute("client", static_cast<std::int64_t>(o.client));
    out.set_attribute("batch", static_cast<std::int64_t>(o.batch));
    out.set_attribute("row", rec.row);
    out.set_attribute("nearest", nearest);
    out.set_attribute("relative_error", rel[k]);
    out.set_attribute("max_abs_error", max_abs[k]);
    out.write_matrix("/inversion/original", originals.data(), o.batch, dim);
    out.write_matrix("/inversion/reconstructed", rec.x.data(), 1, dim);
    std::vector<float> rel_f(rel.begin(), rel.end()), max_f(max_abs.begin(), max_abs.end());
    out.write_floats("/inversion/relative_error", rel_f);
    out.write_floats("/inversion/max_abs_error", max_f);
    out.set_status("completed");
    out.flush();
  }
  fmt::print("gradient inversion of client {}'s gradient on {} sample{} ({})\n", o.client,
             o.batch, o.batch == 1 ? "" : "s", what);
  fmt::print("  first layer {} row {} (dL/db = {:.6g}); nearest sample {}: relative L2 error "
             "{:.6g}, max abs error {:.6g}\n",
             w.name, rec.row, rec.bias_grad, nearest, rel[k], max_abs[k]);
  fmt::print("  -> {}\n", o.out);
  return 0;
}

int membership(const AttackPrivacyOptions& o) {
  require_usage(o.samples >= 1,
                fmt::format("--samples = {} is not allowed: at least 1", o.samples));
  const auto info = metrics::inspect_results_file(o.run);
  require_usage(info.kind == metrics::ResultsFileInfo::Kind::kResults,
                fmt::format("--run '{}' is not a cohort results file", o.run));
  const Config cfg = Config::from_text(info.config, {}, algo::run_schema());
  require_usage(cfg.get_bool("output.save_model") && info.status == "completed",
                fmt::format("--run '{}' holds no final model (status {}; output.save_model = {}): "
                            "membership inference needs a completed run with "
                            "output.save_model: true",
                            o.run, info.status, cfg.get_bool("output.save_model")));
  require_usage(cfg.get_string("data.name") != "quadratic",
                "attack-privacy membership needs data with samples: data.name = quadratic has "
                "none");
  auto problem = algo::make_problem(cfg);
  std::vector<float> x(static_cast<std::size_t>(problem->num_params()));
  for (const LayerView& l : problem->layers()) {
    const auto m = read_hdf5_floats(o.run, "/model/" + l.name, 2, 2);
    require_usage(static_cast<std::int64_t>(m.data.size()) == l.size(),
                  fmt::format("--run '{}': /model/{} holds {} values, the model's layer {}", o.run,
                              l.name, m.data.size(), l.size()));
    std::copy(m.data.begin(), m.data.end(), x.begin() + l.offset);
  }
  // Members: evenly spaced over the clients' samples in (client, position) order; non-members:
  // evenly spaced over the test rows.
  std::vector<std::int64_t> first(static_cast<std::size_t>(problem->num_clients()) + 1, 0);
  for (int c = 0; c < problem->num_clients(); ++c) {
    const auto k = static_cast<std::size_t>(c);
    first[k + 1] = first[k] + problem->client_samples(c);
  }
  const std::int64_t held = first.back(), tests = problem->test_rows();
  const std::int64_t m = std::min<std::int64_t>(o.samples, held);
  const std::int64_t t = std::min<std::int64_t>(o.samples, tests);
  std::vector<double> in, out;
  for (std::int64_t i = 0; i < m; ++i) {
    const std::int64_t s = i * held / m;
    const auto c = std::upper_bound(first.begin(), first.end(), s) - first.begin() - 1;
    in.push_back(problem->sample_loss(static_cast<int>(c), s - first[static_cast<std::size_t>(c)],
                                      x.data()));
  }
  for (std::int64_t i = 0; i < t; ++i) out.push_back(problem->test_loss(i * tests / t, x.data()));
  auto finite = [](const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [](double l) { return std::isfinite(l); });
  };
  require_usage(finite(in) && finite(out),
                fmt::format("--run '{}': the final model gives non-finite losses", o.run));
  const double auc = privacy::membership_auc(in, out);
  const double mean_in = std::accumulate(in.begin(), in.end(), 0.0) / static_cast<double>(m);
  const double mean_out = std::accumulate(out.begin(), out.end(), 0.0) / static_cast<double>(t);
  fmt::print("membership inference by loss threshold on {}: AUC {:.6f} ({} members, mean loss "
             "{:.6g}; {} non-members, mean loss {:.6g})\n",
             o.run, auc, m, mean_in, t, mean_out);
  return 0;
}

}  // namespace

int run_attack_privacy_command(const CLI::App& app, const AttackPrivacyOptions& o) {
  const auto* c = app.get_subcommand("attack-privacy");
  if (*c->get_subcommand("invert")) return invert(o);
  return membership(o);
}

}  // namespace cohort
