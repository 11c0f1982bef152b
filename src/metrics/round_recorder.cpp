#include "metrics/round_recorder.h"

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace cohort::metrics {

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

void RoundRecorder::record(const RoundRecord& r, double elapsed) {
  if (out_ == nullptr) return;
  ResultsFile& out = *out_;
  out.append("round", static_cast<std::int64_t>(r.round));
  out.append("clients", r.clients >= 0 ? r.clients : static_cast<std::int64_t>(r.sampled.size()));
  out.append("train_loss", r.train_loss);
  out.append("test_loss", r.test_loss);
  out.append("test_accuracy", r.accuracy);
  for (std::size_t i = 0; i < r.extra.size(); ++i) out.append(r.extra_names[i], r.extra[i]);
  out.append("uplink_bits", r.uplink_bits);
  out.append("downlink_bits", r.downlink_bits);
  // Per-client rows cover the sampled clients only (Note [Population scale] in algo/runner.cpp).
  out.append_client_row("sampled", r.sampled);
  out.append_client_row("uplink_bits", r.client_bits);
  out.append("byzantine_sampled", r.byzantine_sampled);
  if (r.dist_honest) out.append("agg_dist_honest_mean", *r.dist_honest);
  out.append("dropped_nonfinite", r.dropped_nonfinite);
  if (!std::isnan(r.local_lr)) out.append("local_lr", r.local_lr);
  out.append("server_lr", r.server_lr);
  if (r.selected) out.append_client_row("selected", *r.selected);
  const char* names[4] = {"local", "comm", "aggregate", "eval"};
  for (int i = 0; i < 4; ++i) {
    out.append(fmt::format("time_{}_min", names[i]), r.time_min[i]);
    out.append(fmt::format("time_{}_avg", names[i]), r.time_avg[i]);
    out.append(fmt::format("time_{}_max", names[i]), r.time_max[i]);
  }
  out.append("time_round", r.time_round);
  const bool last = r.round == rounds_;
  const bool show = progress_every_ > 0 && (r.round % progress_every_ == 0 || last);
  // A round announced on the terminal is in the published file before it is announced
  // (Note [Crash-consistent results file]); the others may be published in batches.
  out.flush(show || !r.diverged.empty());
  if (!show && r.diverged.empty()) return;
  const double per = elapsed / static_cast<double>(r.round);
  std::string line = fmt::format("round {:>{}}/{} | train_loss {:.4f}", r.round,
                                 std::to_string(rounds_).size(), rounds_, r.train_loss);
  if (!std::isnan(r.test_loss)) line += fmt::format(" | test_loss {:.4f}", r.test_loss);
  if (!std::isnan(r.accuracy)) line += fmt::format(" | acc {:.2f}%", 100 * r.accuracy);
  // Of the client accuracy distribution, the line shows the mean and the 10th percentile (the
  // file has all of it).
  auto shown = [](const std::string& name) {
    if (name.rfind("global_client_acc_", 0) == 0) return false;
    // Of secure aggregation's columns, the survivors (the rest: the file).
    if (name.rfind("time_", 0) == 0) return false;
    if (name.rfind("secagg_", 0) == 0) return name == "secagg_survivors";
    return name.rfind("client_acc_", 0) != 0 || name == "client_acc_mean" ||
           name == "client_acc_p10";
  };
  for (std::size_t i = 0; i < r.extra.size(); ++i)
    if (!std::isnan(r.extra[i]) && shown(r.extra_names[i]))
      line += fmt::format(" | {} {:.3g}", r.extra_names[i], r.extra[i]);
  line += fmt::format(" | up {} | {:.2f} s/round | ETA {}", human_bits(r.uplink_bits), per,
                      human_seconds(per * static_cast<double>(rounds_ - r.round)));
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

}  // namespace cohort::metrics
