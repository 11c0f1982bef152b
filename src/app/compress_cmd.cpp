#include "app/compress_cmd.h"

#include <hdf5.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "algo/run_schema.h"
#include "app/hdf5_input.h"
#include "compress/compressor.h"
#include "core/config.h"
#include "core/errors.h"
#include "exchange/options.h"
#include "metrics/results_file.h"

namespace cohort {

void add_compress_command(CLI::App& app, CompressCommandOptions& o) {
  auto* cmd = app.add_subcommand(
      "compress",
      "apply the config's compressor (real encoding) to each row of an HDF5 dataset and write the "
      "decoded rows and their encoded sizes");
  cmd->add_option("--config", o.config, "YAML config; its compressor section is used")->required();
  cmd->add_option("--input", o.input, "HDF5 file with a float32 dataset: n x d (vectors) or "
                                      "n x rows x cols (one matrix per row)")
      ->required();
  cmd->add_option("--output", o.output, "HDF5 file to write (/decoded, /bits)")->required();
  cmd->add_option("--dataset", o.dataset, "input dataset name")->capture_default_str();
  cmd->add_option("overrides", o.overrides, "dotted key=value overrides, e.g. compressor.k=10");
}


int run_compress_command(const CompressCommandOptions& o) {
  const Config cfg = Config::load(o.config, o.overrides, algo::run_schema());
  compress::CompressorOptions copts = compress::compressor_options(cfg, compress::kUplinkSlot);
  const bool error_feedback = cfg.get_bool("compressor.error_feedback");
  const auto compressor = compress::make_compressor(copts);
  // The input and its decoded copy; the reader refuses empty shapes, so n, d >= 1 below.
  const Hdf5Floats in = read_hdf5_floats(o.input, o.dataset, 2, 3, 2);
  const auto n = static_cast<std::int64_t>(in.dims[0]);
  const std::int64_t rows = static_cast<std::int64_t>(in.dims[1]);
  const std::int64_t cols = in.dims.size() == 3 ? static_cast<std::int64_t>(in.dims[2]) : 1;
  const std::int64_t d = rows * cols;
  const std::vector<compress::LayerShape> layers = {compress::LayerShape{0, rows, cols}};
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));

  std::vector<float> decoded(in.data.size()), p(static_cast<std::size_t>(d)),
      e(error_feedback ? static_cast<std::size_t>(d) : 0, 0.0f),
      state(static_cast<std::size_t>(compress::total_state_floats(*compressor, layers)), 0.0f);
  std::vector<std::int64_t> bits(static_cast<std::size_t>(n));
  double rel_err_sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* v = in.data.data() + i * d;
    for (std::int64_t j = 0; j < d; ++j) p[j] = v[j] + (error_feedback ? e[j] : 0.0f);
    // Row i is message i of one client: round i of the keyed streams.
    const compress::MessageContext ctx{seed, static_cast<std::uint32_t>(i), 0};
    const compress::Encoded enc = compress::encode(*compressor, p, layers, ctx, state);
    std::span<float> out(decoded.data() + i * d, static_cast<std::size_t>(d));
    compress::decode(*compressor, enc, layers, ctx, out);
    bits[i] = static_cast<std::int64_t>(enc.bits);
    double num = 0, den = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      if (error_feedback) e[j] = p[j] - out[j];
      num += (static_cast<double>(out[j]) - v[j]) * (static_cast<double>(out[j]) - v[j]);
      den += static_cast<double>(v[j]) * v[j];
    }
    rel_err_sum += den > 0 ? std::sqrt(num / den) : 0.0;
  }

  metrics::ResultsFile file(o.output);
  file.set_attribute("config", cfg.resolved_text());
  file.set_attribute("compressor", copts.name);
  file.set_attribute("error_feedback", static_cast<std::int64_t>(error_feedback));
  file.set_attribute("input", o.input + ":" + o.dataset);
  if (in.dims.size() == 2)
    file.write_matrix("/decoded", decoded.data(), n, d);
  else
    file.write_tensor3("/decoded", decoded.data(), n, rows, cols);
  file.write_vector("/bits", bits);
  if (error_feedback) file.write_matrix("/error_memory", e.data(), 1, d);
  std::int64_t total_bits = 0;
  for (auto b : bits) total_bits += b;
  file.set_attribute("total_bits", total_bits);
  file.set_status("completed");
  fmt::print("{} x {} values ({}{}): {:.4f} bits per coordinate ({:.1f}x smaller than float32), "
             "mean relative error {:.4g}\nwrote {}\n",
             n, d, copts.name, error_feedback ? " + error feedback" : "",
             static_cast<double>(total_bits) / static_cast<double>(n * d),
             32.0 * static_cast<double>(n * d) / static_cast<double>(std::max<std::int64_t>(total_bits, 1)),
             n > 0 ? rel_err_sum / static_cast<double>(n) : 0.0, o.output);
  return 0;
}

}  // namespace cohort
