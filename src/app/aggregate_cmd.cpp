#include "app/aggregate_cmd.h"

#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "algo/run_schema.h"
#include "attack/attack.h"
#include "app/hdf5_input.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/limits.h"
#include "exchange/options.h"
#include "metrics/results_file.h"
#include "robust/aggregator.h"

namespace cohort {

void add_aggregate_command(CLI::App& app, AggregateCommandOptions& o) {
  auto* cmd = app.add_subcommand(
      "aggregate", "apply the config's attack (attack.count Byzantine rows) and aggregator to the rows "
                   "of an HDF5 dataset and write the aggregate and what the rule selected");
  cmd->add_option("--config", o.config, "YAML config; its aggregator section is used")->required();
  cmd->add_option("--input", o.input, "HDF5 file with a float n x d dataset (one message a row)")
      ->required();
  cmd->add_option("--output", o.output, "HDF5 file to write (/aggregate, /selected, /scores)")
      ->required();
  cmd->add_option("--dataset", o.dataset, "input dataset name")->capture_default_str();
  cmd->add_option("--round", o.round, "round number keying the rule's random streams (bucketing)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("overrides", o.overrides, "dotted key=value overrides, e.g. aggregator.f=2");
}

namespace {

// The Byzantine rows `cohort aggregate` appends to the honest ones (docs/algorithms.md §4):
// attack.count of them; non-omniscient attacks corrupt a copy of honest row i (i-th attacker),
// omniscient ones are crafted from the honest rows' statistics.
std::vector<float> byzantine_rows(const Config& cfg, const Hdf5Floats& honest, std::uint64_t seed,
                                  std::uint32_t round) {
  const attack::AttackOptions a = attack::attack_options(cfg);
  if (a.name == "none") return {};
  const int f = static_cast<int>(cfg.get_int("attack.count"));
  require_usage(f > 0, "cohort aggregate adds attack.count Byzantine rows: set attack.count >= 1");
  require_usage(a.name != "labelflip", "attack labelflip changes training, not messages: it has no "
                                       "effect in cohort aggregate");
  const auto atk = attack::make_attack(a);
  if (atk->drops()) return {};
  // read_hdf5_floats guarantees 1 <= n, d <= 2^31 - 1: a honest row to copy or learn from.
  const int n = static_cast<int>(honest.dims[0]);
  const auto d = static_cast<std::int64_t>(honest.dims[1]);
  require_usage(f <= std::numeric_limits<int>::max() - n,
                fmt::format("attack.count = {} Byzantine rows beside {} honest ones exceed {} "
                            "messages", f, n, std::numeric_limits<int>::max()));
  const std::string what = fmt::format("attack.count = {} Byzantine rows of {} values", f, d);
  // The Byzantine rows, then the input grown by them (two copies while it grows).
  require_memory(checked_mul(checked_mul(2 * static_cast<std::int64_t>(n) + 3 * f, d, what), 4,
                             what),
                 what);
  const std::string why = atk->craft_problem(n + f, f);
  require_usage(why.empty(), fmt::format("attack.name = {} with {} honest rows and attack.count = "
                                         "{}: {}",
                                         a.name, n, f, why));
  std::vector<float> rows(static_cast<std::size_t>(f * d));
  if (!atk->omniscient()) {
    for (int i = 0; i < f; ++i) {
      std::span<float> row(rows.data() + i * d, static_cast<std::size_t>(d));
      std::copy_n(honest.data.data() + (i % n) * d, d, row.begin());
      Rng rng(seed, round, static_cast<std::uint32_t>(n + i), Purpose::kAttack);
      atk->corrupt(row, rng);
    }
    return rows;
  }
  attack::HonestStats st;
  st.n = n;
  st.mean.assign(static_cast<std::size_t>(d), 0.0);
  st.stddev.assign(static_cast<std::size_t>(d), 0.0);
  for (int i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) st.mean[j] += honest.data[i * d + j] / static_cast<double>(n);
  for (int i = 0; i < n && n > 1; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const double r = honest.data[i * d + j] - st.mean[j];
      st.stddev[j] += r * r / (n - 1);
    }
  for (auto& v : st.stddev) v = std::sqrt(v);
  // row 0 (the lowest id), or the row mimic's target = variance picks (Note [Mimic target])
  const std::size_t target =
      attack::mimic_by_variance(a)
          ? attack::mimic_variance_target(
                std::span<const float>(honest.data.data(), static_cast<std::size_t>(n * d)),
                static_cast<std::size_t>(n), d, seed)
          : 0;
  st.mimic.assign(honest.data.begin() + static_cast<std::ptrdiff_t>(target * d),
                  honest.data.begin() + static_cast<std::ptrdiff_t>((target + 1) * d));
  if (atk->needs_messages()) st.messages.assign(honest.data.begin(), honest.data.begin() + n * d);
  atk->craft(st, n + f, f, std::span<float>(rows.data(), static_cast<std::size_t>(d)));
  for (int i = 1; i < f; ++i) std::copy_n(rows.data(), d, rows.data() + i * d);
  return rows;
}

}  // namespace

int run_aggregate_command(const AggregateCommandOptions& o) {
  const Config cfg = Config::load(o.config, o.overrides, algo::run_schema());
  const std::string name = cfg.get_string("aggregator.name");
  require_usage(name != "majority", "aggregator majority votes on sign messages; cohort aggregate "
                                    "applies mean or a robust rule");
  require_usage(name != "qffl",
                "aggregator qffl weighs messages by the clients' losses, which cohort aggregate "
                "does not have; use it in `cohort run`");
  require_usage(name != "zeno",
                "aggregator zeno scores messages with the server's validation loss, which "
                "cohort aggregate does not have; use it in `cohort run`");
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  Hdf5Floats in = read_hdf5_floats(o.input, o.dataset, 2, 2, 2);  // the input and /messages
  const int honest = static_cast<int>(in.dims[0]);
  const auto d = static_cast<std::int64_t>(in.dims[1]);
  const std::vector<float> byz = byzantine_rows(cfg, in, seed, static_cast<std::uint32_t>(o.round));
  in.data.insert(in.data.end(), byz.begin(), byz.end());
  const int n = honest + static_cast<int>(byz.size() / static_cast<std::size_t>(std::max<std::int64_t>(d, 1)));
  std::vector<int> clients(static_cast<std::size_t>(n));
  std::iota(clients.begin(), clients.end(), 0);
  std::vector<float> out(static_cast<std::size_t>(d), NAN);
  robust::Report report;
  bool ok = true;
  if (name == "mean") {  // not robust: non-finite rows propagate
    for (std::int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += in.data[i * d + j];
      out[j] = static_cast<float>(s / n);
    }
  } else {
    const robust::AggregatorOptions opts = robust::aggregator_options(cfg);
    auto rule = robust::make_aggregator(opts);
    rule->check_inputs(n);  // with bucketing, the wrapper checks ceil(n/s) buckets
    const robust::Messages m{in.data.data(), n, d, clients, {}};
    const robust::Context ctx{seed, static_cast<std::uint32_t>(o.round), {}, nullptr, {}};
    ok = robust::aggregate(*rule, m, ctx, out.data(), report);
  }

  metrics::ResultsFile file(o.output);
  file.set_attribute("config", cfg.resolved_text());
  file.set_attribute("aggregator", name);
  file.set_attribute("attack", cfg.get_string("attack.name"));
  file.set_attribute("input", o.input + ":" + o.dataset);
  file.set_attribute("dropped_nonfinite", static_cast<std::int64_t>(report.dropped_nonfinite));
  file.write_matrix("/aggregate", out.data(), 1, d);
  file.write_matrix("/messages", in.data.data(), n, d);
  std::vector<std::int64_t> byz_ids;
  for (int i = honest; i < n; ++i) byz_ids.push_back(i);
  file.write_vector("/byzantine", byz_ids);
  std::vector<std::int64_t> selected(report.selected.begin(), report.selected.end());
  file.write_vector("/selected", selected);
  if (!report.scores.empty()) {
    std::vector<float> scores(report.scores.begin(), report.scores.end());
    file.write_matrix("/scores", scores.data(), 1, static_cast<std::int64_t>(scores.size()));
  }
  file.set_status(ok ? "completed" : "failed", ok ? "" : "no finite input row");
  fmt::print("{} over {} x {} rows ({} honest, {} Byzantine from attack {}): {} dropped as "
             "non-finite{}\nwrote {}\n",
             name, n, d, honest, n - honest, cfg.get_string("attack.name"),
             report.dropped_nonfinite,
             selected.empty() ? "" : fmt::format(", selected rows {}", fmt::join(selected, " ")),
             o.output);
  return ok ? 0 : 1;
}

}  // namespace cohort
