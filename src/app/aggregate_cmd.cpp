#include "app/aggregate_cmd.h"

#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "algo/exchange.h"
#include "app/hdf5_input.h"
#include "core/config.h"
#include "core/errors.h"
#include "metrics/results_file.h"
#include "robust/aggregator.h"

namespace cohort {

void add_aggregate_command(CLI::App& app, AggregateCommandOptions& o) {
  auto* cmd = app.add_subcommand(
      "aggregate", "apply the config's robust aggregator to the rows of an HDF5 dataset and write "
                   "the aggregate and what the rule selected");
  cmd->add_option("--config", o.config, "YAML config; its aggregator section is used")->required();
  cmd->add_option("--input", o.input, "HDF5 file with a float n x d dataset (one message a row)")
      ->required();
  cmd->add_option("--output", o.output, "HDF5 file to write (/aggregate, /selected, /scores)")
      ->required();
  cmd->add_option("--dataset", o.dataset, "input dataset name")->capture_default_str();
  cmd->add_option("--round", o.round, "round number keying the rule's random streams (bucketing)")
      ->capture_default_str();
  cmd->add_option("overrides", o.overrides, "dotted key=value overrides, e.g. aggregator.f=2");
}

int run_aggregate_command(const AggregateCommandOptions& o) {
  const Config cfg = Config::load(o.config, o.overrides);
  const std::string name = cfg.get_string("aggregator.name");
  require_usage(name != "mean" && name != "majority",
                "cohort aggregate applies robust rules (cm, tm, krum, multikrum, gm, cclip, "
                "bulyan, zeno); aggregator.name = " + name + " is a plain sum");
  require_usage(name != "zeno",
                "aggregator zeno scores messages with the server's validation loss, which "
                "cohort aggregate does not have; use it in `cohort run`");
  const robust::AggregatorOptions opts = algo::robust_options(cfg);
  const Hdf5Floats in = read_hdf5_floats(o.input, o.dataset, 2, 2);
  const int n = static_cast<int>(in.dims[0]);
  const auto d = static_cast<std::int64_t>(in.dims[1]);
  auto rule = robust::make_aggregator(opts);
  rule->check_inputs(opts.bucket > 1 ? (n + opts.bucket - 1) / opts.bucket : n);
  std::vector<int> clients(static_cast<std::size_t>(n));
  std::iota(clients.begin(), clients.end(), 0);
  const robust::Messages m{in.data.data(), n, d, clients, {}};
  const robust::Context ctx{static_cast<std::uint64_t>(cfg.get_int("seed")),
                            static_cast<std::uint32_t>(o.round), {}, nullptr};
  std::vector<float> out(static_cast<std::size_t>(d), NAN);
  robust::Report report;
  const bool ok = robust::aggregate(*rule, m, ctx, out.data(), report);

  metrics::ResultsFile file(o.output);
  file.set_attribute("config", cfg.resolved_text());
  file.set_attribute("aggregator", name);
  file.set_attribute("input", o.input + ":" + o.dataset);
  file.set_attribute("dropped_nonfinite", static_cast<std::int64_t>(report.dropped_nonfinite));
  file.write_matrix("/aggregate", out.data(), 1, d);
  std::vector<std::int64_t> selected(report.selected.begin(), report.selected.end());
  file.write_vector("/selected", selected);
  if (!report.scores.empty()) {
    std::vector<float> scores(report.scores.begin(), report.scores.end());
    file.write_matrix("/scores", scores.data(), 1, static_cast<std::int64_t>(scores.size()));
  }
  file.set_status(ok ? "completed" : "failed", ok ? "" : "no finite input row");
  fmt::print("{} over {} x {} rows: {} dropped as non-finite{}\nwrote {}\n", name, n, d,
             report.dropped_nonfinite,
             selected.empty() ? "" : fmt::format(", selected rows {}", fmt::join(selected, " ")),
             o.output);
  return ok ? 0 : 1;
}

}  // namespace cohort
