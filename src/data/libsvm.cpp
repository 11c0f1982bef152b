// LIBSVM text reader and a dense writer.
//
// Numbers are parsed and printed with std::from_chars / std::to_chars, which ignore the C locale,
// so a file reads the same on every machine. Values are written with 9 significant digits
// ("%.9g"), enough for a float to read back bit for bit.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/errors.h"
#include "core/limits.h"
#include "data/loaders.h"

namespace cohort::data {
namespace {

struct Entry {
  std::int64_t index;  // 0-based column
  float value;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<std::string_view> split_tokens(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    const std::size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// A finite double filling the whole token ('+' prefix allowed).
bool parse_double(std::string_view s, double& out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(out);
}

// A decimal integer >= 1 filling the whole token.
bool parse_index(std::string_view s, std::int64_t& out) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && out >= 1;
}

class LineError {
 public:
  LineError(const std::string& path, std::int64_t line)
      : where_(path + ":" + std::to_string(line) + ": ") {}
  [[noreturn]] void fail(const std::string& reason) const { throw UsageError(where_ + reason); }

 private:
  std::string where_;
};

float to_float(double v, std::string_view token, const LineError& err) {
  if (std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max())) {
    err.fail("value '" + std::string(token) + "' is outside the float range");
  }
  return static_cast<float>(v);
}

// Parses one non-empty line's feature tokens (everything after the label) into entries. An
// index above index_limit (the most features one row can have in this machine's memory) is refused
// at its line, before any size is computed from it (Note [Input sizes]).
std::vector<Entry> parse_features(const std::vector<std::string_view>& tokens, std::int64_t dim,
                                  std::int64_t index_limit, const LineError& err) {
  std::vector<Entry> entries;
  if (tokens.size() <= 1) return entries;
  const bool sparse = tokens[1].find(':') != std::string_view::npos;
  std::int64_t last = 0;
  for (std::size_t t = 1; t < tokens.size(); ++t) {
    const std::string_view tok = tokens[t];
    const std::size_t colon = tok.find(':');
    if ((colon != std::string_view::npos) != sparse) {
      err.fail("token '" + std::string(tok) +
               "' mixes the dense (value ...) and sparse (index:value ...) forms on one line");
    }
    std::int64_t index = static_cast<std::int64_t>(t);  // dense: position
    std::string_view value_text = tok;
    if (sparse) {
      const std::string_view index_text = tok.substr(0, colon);
      value_text = tok.substr(colon + 1);
      if (!parse_index(index_text, index)) {
        err.fail("index '" + std::string(index_text) +
                 "' is not a positive integer below 2^63 (indices are 1-based)");
      }
      if (dim == 0 && index > index_limit) {
        err.fail("index " + std::to_string(index) + " is larger than the " +
                 std::to_string(index_limit) + " float features this machine's memory (" +
                 human_bytes(static_cast<double>(index_limit) * sizeof(float)) +
                 ") can hold in one row");
      }
      if (index <= last) {
        err.fail("index " + std::to_string(index) + " does not follow " + std::to_string(last) +
                 " (indices must be strictly ascending)");
      }
    }
    if (dim > 0 && index > dim) {
      err.fail("index " + std::to_string(index) + " exceeds the dimension " + std::to_string(dim) +
               " given for this file");
    }
    double v = 0.0;
    if (!parse_double(value_text, v)) {
      err.fail("value '" + std::string(value_text) + "' of index " + std::to_string(index) +
               " is not a finite number");
    }
    last = index;
    entries.push_back({index - 1, to_float(v, value_text, err)});
  }
  return entries;
}

void append_number(std::string& out, double v) {
  char buf[64];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 9);
  out.append(buf, ec == std::errc() ? ptr : buf);
}

}  // namespace

Dataset read_libsvm(const std::string& path, std::int64_t dim, bool regression) {
  if (dim < 0) {
    throw UsageError("LIBSVM file " + path + ": dimension " + std::to_string(dim) +
                     " is negative (use 0 for 'largest index seen' or a positive dimension)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw UsageError("cannot open LIBSVM file " + path +
                     " (expected a text file of lines 'label index:value index:value ...')");
  }

  const std::int64_t index_limit = usable_memory_bytes() / static_cast<std::int64_t>(sizeof(float));
  std::vector<double> raw_labels;
  std::vector<std::vector<Entry>> rows;
  std::int64_t max_index = 0;
  std::string line;
  std::int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view view(line);
    if (const std::size_t hash = view.find('#'); hash != std::string_view::npos) {
      view = view.substr(0, hash);
    }
    const std::vector<std::string_view> tokens = split_tokens(view);
    if (tokens.empty()) continue;
    const LineError err(path, line_no);
    double label = 0.0;
    if (!parse_double(tokens[0], label)) {
      err.fail("label '" + std::string(tokens[0]) + "' is not a finite number");
    }
    if (regression) to_float(label, tokens[0], err);  // targets are stored as float
    std::vector<Entry> entries = parse_features(tokens, dim, index_limit, err);
    if (!entries.empty()) max_index = std::max(max_index, entries.back().index + 1);
    raw_labels.push_back(label);
    rows.push_back(std::move(entries));
  }
  if (in.bad()) throw UsageError("LIBSVM file " + path + ": read error");
  if (rows.empty()) throw UsageError("LIBSVM file " + path + " holds no samples");

  Dataset ds;
  ds.rows = static_cast<std::int64_t>(rows.size());
  ds.dim = dim > 0 ? dim : max_index;
  if (ds.dim == 0) throw UsageError("LIBSVM file " + path + " holds no features");
  const std::string what = "LIBSVM file " + path + " (" + std::to_string(ds.rows) + " rows x " +
                           std::to_string(ds.dim) + " features, dense float32)";
  require_memory(checked_mul(checked_mul(ds.rows, ds.dim, what), sizeof(float), what), what);
  ds.x.assign(static_cast<std::size_t>(ds.rows * ds.dim), 0.0f);
  for (std::int64_t i = 0; i < ds.rows; ++i) {
    for (const Entry& e : rows[static_cast<std::size_t>(i)]) {
      ds.x[static_cast<std::size_t>(i * ds.dim + e.index)] = e.value;
    }
  }

  if (regression) {
    ds.num_classes = 0;
    ds.targets.reserve(raw_labels.size());
    for (const double y : raw_labels) ds.targets.push_back(static_cast<float>(y));
  } else {
    std::vector<double> distinct = raw_labels;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    ds.num_classes = static_cast<int>(distinct.size());
    ds.labels.reserve(raw_labels.size());
    for (const double y : raw_labels) {
      const auto it = std::lower_bound(distinct.begin(), distinct.end(), y);
      ds.labels.push_back(static_cast<std::int32_t>(it - distinct.begin()));
    }
  }
  return ds;
}

void write_libsvm(const std::string& path, const Dataset& ds) {
  const bool regression = ds.is_regression();
  const std::size_t need = static_cast<std::size_t>(ds.rows);
  if (ds.rows < 0 || ds.dim < 0 || ds.x.size() != need * static_cast<std::size_t>(ds.dim) ||
      (regression ? ds.targets.size() : ds.labels.size()) != need) {
    throw UsageError("write_libsvm(" + path + "): dataset sizes are inconsistent");
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UsageError("cannot create LIBSVM file " + path);
  std::string line;
  for (std::int64_t i = 0; i < ds.rows; ++i) {
    line.clear();
    if (regression) {
      append_number(line, ds.targets[static_cast<std::size_t>(i)]);
    } else {
      line += std::to_string(ds.labels[static_cast<std::size_t>(i)]);
    }
    const float* x = ds.row(i);
    for (std::int64_t j = 0; j < ds.dim; ++j) {
      line += ' ';
      line += std::to_string(j + 1);
      line += ':';
      append_number(line, x[j]);
    }
    line += '\n';
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  out.flush();
  if (!out) throw UsageError("write error on LIBSVM file " + path);
}

SourceRegistration libsvm_registration() {
  return {"libsvm",
          "a LIBSVM text file of your own (dense or sparse)",
          {opt_string("path", "", "training file (required)"),
           opt_string("test_path", "", "test file; empty: hold out test_fraction of path"),
           opt_int("dim", 0, "number of features; 0: largest index seen"),
           opt_enum("task", "classification", {"classification", "regression"},
                    "labels remapped to 0..C-1, or kept as regression targets"),
           opt_float("test_fraction", 0.2, "held-out share when test_path is empty", 0, 0.99,
                     true)},
          [](const Config& cfg) {
            const std::string path = cfg.get_string("data.path");
            require_usage(!path.empty(), "data.path is required for data.name = libsvm");
            const bool regression = cfg.get_string("data.task") == "regression";
            Dataset all = read_libsvm(path, cfg.get_int("data.dim"), regression);
            const std::string test_path = cfg.get_string("data.test_path");
            LoadedData out;
            TrainTest& tt = out.data;
            if (test_path.empty()) {
              tt = split_train_test(all, cfg.get_float("data.test_fraction"),
                                    static_cast<std::uint64_t>(cfg.get_int("seed")));
            } else {
              tt.train = std::move(all);
              tt.test = read_libsvm(test_path, tt.train.dim, regression);
              require_usage(regression || tt.test.num_classes <= tt.train.num_classes,
                            "data.test_path has more classes than data.path");
              tt.test.num_classes = tt.train.num_classes;
            }
            return out;
          }};
}

}  // namespace cohort::data
