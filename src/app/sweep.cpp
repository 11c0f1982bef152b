#include "app/sweep.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "algo/run_schema.h"
#include "algo/run_state.h"
#include "app/sweep_local.h"
#include "app/sweep_script.h"
#include "compress/compressor.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/schema.h"
#include "metrics/results_claim.h"

namespace cohort {
namespace fs = std::filesystem;

void add_sweep_command(CLI::App& app, SweepCommandOptions& o) {
  auto* cmd = app.add_subcommand(
      "sweep", "expand a sweep file into validated configs, a manifest and a launcher, and run it");
  cmd->add_option("sweep", o.sweep, "sweep YAML file")->required();
  cmd->add_option("--out", o.out, "output directory (runs/, manifest.csv, manifest.json)")
      ->required();
  cmd->add_option("--launcher", o.launcher, "local: run here; slurm: write (and --submit) an "
                                            "sbatch job array; none: only write the configs")
      ->check(CLI::IsMember({"local", "slurm", "none"}))
      ->capture_default_str();
  cmd->add_flag("--submit", o.submit, "slurm: submit the job array with sbatch");
  cmd->add_option("--jobs", o.jobs, "local: runs at once (default: the sweep file's local.jobs, 1)");
}

namespace {

// One swept value: as the manifest, run ids and messages show it, and as YAML text that an
// override loads back as the same node (Note [Sweep values are data]).
struct Value {
  std::string shown, yaml;
};

Value value_of(const YAML::Node& n) { return {n.IsScalar() ? n.Scalar() : yaml_text(n), yaml_text(n)}; }

struct Axis {
  std::string key;
  std::vector<Value> values;
};

struct Run {
  std::string id;
  std::vector<std::pair<std::string, Value>> values;  // swept key -> value
  fs::path dir;
};

struct Sweep {
  fs::path file;
  std::string base_text, base_source;
  bool base_outside = false;  // Note [A base outside the sweep]
  std::vector<std::string> overrides;
  std::vector<Axis> grid, zip;
  std::vector<Value> seeds;
  int np = 1;
  int local_jobs = 1;
  std::map<std::string, std::string> slurm;
  std::vector<std::string> slurm_extra;
};

// More runs than this is a mistake in the sweep file (`seeds: 1000000`, a grid of many long
// axes); expanding it would exhaust memory and time before the first run's check.
constexpr std::uint64_t kMaxRuns = 10000;

[[noreturn]] void sweep_error(const Sweep& s, const std::string& msg) {
  throw UsageError(fmt::format("{}: {}", s.file.string(), msg));
}

void check_keys(const Sweep& s, const YAML::Node& map, const std::string& where,
                const std::vector<std::string>& valid) {
  if (!map.IsMap()) sweep_error(s, fmt::format("'{}' must be a mapping", where.substr(0, where.size() - 1)));
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
    const std::string near = nearest(key, valid);
    std::string list;
    for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
    sweep_error(s, fmt::format("unknown key '{}{}'{} (valid: {})", where, key,
                               near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near),
                               list));
  }
}

// A config key as the sweep file names it: a scalar without '=' (it would split key=value).
std::string dotted_key(const Sweep& s, const YAML::Node& key, const std::string& where) {
  const std::string k = key.IsScalar() ? key.Scalar() : std::string();
  if (k.empty() || k.find('=') != std::string::npos ||
      std::any_of(k.begin(), k.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    sweep_error(s, fmt::format("{}: '{}' is not a dotted config key", where, printable(k)));
  return k;
}

std::vector<Axis> axes(const Sweep& s, const YAML::Node& node, const std::string& name) {
  std::vector<Axis> out;
  if (!node) return out;
  if (!node.IsMap()) sweep_error(s, name + " must map dotted keys to lists of values");
  for (const auto& kv : node) {
    Axis a{dotted_key(s, kv.first, name), {}};
    if (!kv.second.IsSequence() || kv.second.size() == 0)
      sweep_error(s, fmt::format("{}.{} must be a non-empty list of values", name, a.key));
    for (const auto& v : kv.second) a.values.push_back(value_of(v));
    out.push_back(std::move(a));
  }
  return out;
}

// Note [A base outside the sweep]: `base:` may name any readable file, also one outside the
// sweep file's directory (symbolic links resolved). Messages about such a base never quote it:
// a validation error is shown only when validating the run without the base gives the very same
// message, so that it depends on the sweep's own values and the schema alone.
bool inside_directory(const fs::path& dir, const fs::path& file) {
  std::error_code e1, e2;
  const fs::path d = fs::weakly_canonical(dir, e1), f = fs::weakly_canonical(file, e2);
  if (e1 || e2) return false;
  const fs::path rel = f.lexically_relative(d);
  return !rel.empty() && *rel.begin() != "..";
}

void load_base(Sweep& s, const YAML::Node& root) {
  if (!root["base"]) sweep_error(s, "'base' (the base config file) is required");
  if (!root["base"].IsScalar()) sweep_error(s, "'base' must be the path of a config file");
  const fs::path base = s.file.parent_path() / root["base"].Scalar();
  s.base_source = base.lexically_normal().string();
  s.base_outside = !inside_directory(s.file.parent_path(), base);
  std::error_code ec;
  if (fs::exists(base, ec) && !fs::is_regular_file(base, ec))  // a directory, FIFO, device
    sweep_error(s, fmt::format("base config '{}' is not a regular file", s.base_source));
  std::ifstream in(base);
  if (!in) sweep_error(s, fmt::format("base config '{}' cannot be opened", s.base_source));
  std::stringstream ss;
  ss << in.rdbuf();
  s.base_text = ss.str();
  YAML::Node parsed;
  try {
    parsed = YAML::Load(s.base_text);
  } catch (const YAML::Exception& e) {
    sweep_error(s, fmt::format("base config {}:{}:{}: YAML syntax error{}", s.base_source,
                               e.mark.line + 1, e.mark.column + 1,
                               s.base_outside ? "" : ": " + e.msg));
  }
  if (parsed && !parsed.IsNull() && !parsed.IsMap())
    sweep_error(s, fmt::format("base config '{}' is not a mapping of config keys", s.base_source));
}

void load_sweep_file(Sweep& s, const YAML::Node& root) {
  if (!root.IsMap()) sweep_error(s, "a sweep file is a mapping (base, grid, zip, seeds, ...)");
  check_keys(s, root, "", {"base", "overrides", "grid", "zip", "seeds", "np", "slurm", "local"});
  load_base(s, root);
  if (const auto ov = root["overrides"]) {
    if (!ov.IsMap()) sweep_error(s, "overrides must map dotted keys to values");
    for (const auto& kv : ov)
      s.overrides.push_back(dotted_key(s, kv.first, "overrides") + "=" + yaml_text(kv.second));
  }
  s.grid = axes(s, root["grid"], "grid");
  s.zip = axes(s, root["zip"], "zip");
  for (const auto& a : s.zip)
    if (a.values.size() != s.zip.front().values.size())
      sweep_error(s, fmt::format("zip lists must have equal lengths: zip.{} has {}, zip.{} has {}",
                                 s.zip.front().key, s.zip.front().values.size(), a.key,
                                 a.values.size()));
  if (const auto seeds = root["seeds"]) {
    if (seeds.IsScalar()) {
      const int n = seeds.as<int>();
      if (n < 1 || static_cast<std::uint64_t>(n) > kMaxRuns)
        sweep_error(s, fmt::format("seeds: an integer n in [1, {}] (seeds 0..n-1) or a list of "
                                   "seeds",
                                   kMaxRuns));
      for (int i = 0; i < n; ++i) s.seeds.push_back({std::to_string(i), std::to_string(i)});
    } else {
      if (!seeds.IsSequence() || seeds.size() == 0)
        sweep_error(s, "seeds: an integer n >= 1 (seeds 0..n-1) or a list of seeds");
      for (const auto& v : seeds) s.seeds.push_back(value_of(v));
    }
  }
  // The number of runs, before anything is expanded.
  std::uint64_t runs = 1;
  std::string factors;
  const auto times = [&](std::size_t n, const std::string& what) {
    factors += fmt::format("{}{} {}", factors.empty() ? "" : " x ", n, what);
    runs = n > kMaxRuns ? kMaxRuns + 1 : std::min<std::uint64_t>(runs * n, kMaxRuns + 1);
  };
  for (const auto& a : s.grid) times(a.values.size(), "grid." + a.key);
  if (!s.zip.empty()) times(s.zip.front().values.size(), "zip");
  if (!s.seeds.empty()) times(s.seeds.size(), "seeds");
  if (runs > kMaxRuns)
    sweep_error(s, fmt::format("the sweep expands to more than {} runs ({}); split it into "
                               "smaller sweeps",
                               kMaxRuns, printable(factors)));
  if (root["np"]) s.np = root["np"].as<int>();
  if (s.np < 1) sweep_error(s, "np (ranks per run) must be >= 1");
  if (const auto local = root["local"]) {
    check_keys(s, local, "local.", {"jobs"});
    if (local["jobs"]) s.local_jobs = local["jobs"].as<int>();
    if (s.local_jobs < 1) sweep_error(s, "local.jobs (runs at once) must be >= 1");
  }
  s.slurm = {{"partition", ""}, {"time", "01:00:00"}, {"nodes", "1"},
             {"ntasks", std::to_string(s.np)}, {"cpus_per_task", "1"}, {"account", ""},
             {"overcommit", "false"}, {"launch", "srun"}, {"signal_grace", "120"}};
  if (const auto sl = root["slurm"]) {
    std::vector<std::string> valid{"extra"};
    for (const auto& [k, v] : s.slurm) valid.push_back(k);
    check_keys(s, sl, "slurm.", valid);
    for (const auto& kv : sl) {
      const std::string k = kv.first.as<std::string>();
      if (k == "extra") {
        if (!kv.second.IsSequence()) sweep_error(s, "slurm.extra must be a list of \"#SBATCH ...\" lines");
        for (const auto& line : kv.second) s.slurm_extra.push_back(line.as<std::string>());
      } else {
        if (!kv.second.IsScalar() && !kv.second.IsNull())
          sweep_error(s, fmt::format("slurm.{} must be a single value", k));
        s.slurm[k] = kv.second.IsNull() ? std::string() : kv.second.Scalar();
      }
    }
    if (s.slurm["launch"] != "srun" && s.slurm["launch"] != "mpirun")
      sweep_error(s, "slurm.launch must be srun (srun --mpi=pmix) or mpirun");
    if (s.slurm["overcommit"] != "true" && s.slurm["overcommit"] != "false")
      sweep_error(s, "slurm.overcommit must be true or false");
  }
}

Sweep load_sweep(const std::string& path) {
  Sweep s;
  s.file = fs::absolute(path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw UsageError(fmt::format("cannot open sweep file '{}'", path));
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.msg));
  }
  try {
    load_sweep_file(s, root);
    return s;
  } catch (const YAML::Exception& e) {  // a value of the wrong type (np: two, seeds: {a: 1})
    throw UsageError(fmt::format("{}:{}: {}", path, e.mark.line + 1, e.msg));
  }
}

// What the sbatch script is made of, from the sweep file and --out.
SbatchSpec sbatch_spec(const Sweep& s, const fs::path& out, std::size_t array_size) {
  auto sl = s.slurm;
  SbatchSpec spec;
  spec.sweep_file = s.file.string();
  spec.array_size = array_size;
  spec.partition = sl["partition"];
  spec.account = sl["account"];
  spec.time = sl["time"];
  spec.nodes = sl["nodes"];
  spec.ntasks = sl["ntasks"];
  spec.cpus_per_task = sl["cpus_per_task"];
  spec.overcommit = sl["overcommit"] == "true";
  spec.extra = s.slurm_extra;
  // In an --output pattern '%' starts a replacement (%A, %a); '%%' is a literal '%'.
  std::string runs;
  for (char c : (out / "runs").string()) runs += c == '%' ? std::string("%%") : std::string(1, c);
  spec.output_pattern = runs + "/slurm-%A_%a.out";
  spec.pending_list = (out / "pending.txt").string();
  spec.runs_dir = (out / "runs").string();
  spec.exe = fs::read_symlink("/proc/self/exe").string();
  spec.use_srun = sl["launch"] == "srun";
  spec.signal_grace = sl["signal_grace"];
  return spec;
}

std::string slug(const std::string& key, const std::string& value) {
  std::string k = key.substr(key.rfind('.') + 1), out = k + "-";
  for (char c : value) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

std::vector<Run> expand(const Sweep& s, const fs::path& out) {
  using Combo = std::vector<std::pair<std::string, Value>>;
  std::vector<Combo> combos = {{}};
  for (const auto& a : s.grid) {
    std::vector<Combo> next;
    for (const auto& c : combos)
      for (const auto& v : a.values) {
        auto e = c;
        e.emplace_back(a.key, v);
        next.push_back(std::move(e));
      }
    combos = std::move(next);
  }
  if (!s.zip.empty()) {
    std::vector<Combo> next;
    for (const auto& c : combos)
      for (std::size_t i = 0; i < s.zip.front().values.size(); ++i) {
        auto e = c;
        for (const auto& a : s.zip) e.emplace_back(a.key, a.values[i]);
        next.push_back(std::move(e));
      }
    combos = std::move(next);
  }
  if (!s.seeds.empty()) {
    std::vector<Combo> next;
    for (const auto& c : combos)
      for (const auto& seed : s.seeds) {
        auto e = c;
        e.emplace_back("seed", seed);
        next.push_back(std::move(e));
      }
    combos = std::move(next);
  }
  std::vector<Run> runs;
  for (std::size_t i = 0; i < combos.size(); ++i) {
    std::string id = fmt::format("r{:03d}", i);
    for (const auto& [k, v] : combos[i]) id += "_" + slug(k, v.shown);
    if (id.size() > 96) id.resize(96);
    runs.push_back(Run{id, combos[i], out / "runs" / id});
  }
  return runs;
}

// The resolved config of one run, or the message that explains why there is none.
std::string resolve_run(const std::string& base_text, const std::vector<std::string>& ov,
                        const std::string& source, std::string& error) {
  try {
    const Config cfg = Config::from_text(base_text, ov, algo::run_schema(), source);
    // What every run checks before its data is read (Note [One setup for run and validate]).
    algo::check_components(cfg);
    return yaml_document(cfg.resolved());
  } catch (const UsageError& e) {
    error = e.what();
    return {};
  }
}

// Where a run stands, from its results file and the config it must have been made with.
struct RunState {
  enum Kind { kToRun, kCompleted, kInUse } kind = kToRun;
  std::string status;  // what the results file says, for messages
  bool stale = false;  // a results file made with another config
};

RunState run_state(const fs::path& results, const std::string& expected_config) {
  const metrics::ResultsFileInfo info = metrics::inspect_results_file(results.string());
  if (info.in_use) return {RunState::kInUse, "in use", false};
  switch (info.kind) {
    case metrics::ResultsFileInfo::Kind::kMissing:
      return {RunState::kToRun, "missing", false};
    case metrics::ResultsFileInfo::Kind::kOther:
      return {RunState::kToRun, "not a results file", false};
    case metrics::ResultsFileInfo::Kind::kResults:
      break;
  }
  if (info.config != expected_config) return {RunState::kToRun, info.status, true};
  return {info.status == "completed" ? RunState::kCompleted : RunState::kToRun, info.status, false};
}

std::string csv_cell(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string json_string(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(u));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void write_manifest(const fs::path& out, const Sweep& s, const std::vector<Run>& runs) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : runs.front().values) keys.push_back(k);
  std::ofstream csv(out / "manifest.csv");
  csv << "run_id";
  for (const auto& k : keys) csv << "," << csv_cell(k);
  csv << ",config,results\n";
  std::ofstream js(out / "manifest.json");
  js << "{\"sweep\": " << json_string(s.file.string()) << ", \"base\": "
     << json_string(s.base_source) << ", \"np\": " << s.np << ", \"runs\": [\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    csv << r.id;
    js << "  {\"run_id\": " << json_string(r.id) << ", \"values\": {";
    for (std::size_t j = 0; j < r.values.size(); ++j) {
      csv << "," << csv_cell(r.values[j].second.shown);
      js << (j ? ", " : "") << json_string(r.values[j].first) << ": "
         << json_string(r.values[j].second.shown);
    }
    csv << "," << csv_cell((r.dir / "config.yaml").string()) << ","
        << csv_cell((r.dir / "metrics.h5").string()) << "\n";
    js << "}, \"config\": " << json_string((r.dir / "config.yaml").string())
       << ", \"results\": " << json_string((r.dir / "metrics.h5").string()) << "}"
       << (i + 1 < runs.size() ? ",\n" : "\n");
  }
  js << "]}\n";
}

// Note [One sweep per directory]: `cohort sweep` holds an flock on DIR/sweep.lock from before it
// writes the configs until it exits. The runs it starts inherit the descriptor, so the lock stays
// held until the last of them has exited, even when the sweep itself was killed: a second sweep
// on the same --out is refused (exit 2) instead of starting runs beside them.
int lock_out_dir(const fs::path& out) {
  const fs::path lock = out / "sweep.lock";
  const int fd = open(lock.c_str(), O_RDWR | O_CREAT, 0644);  // inherited on purpose (above)
  require_usage(fd >= 0, fmt::format("--out: cannot create '{}': {}", lock.string(),
                                     std::strerror(errno)));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    throw UsageError(fmt::format(
        "--out: another cohort sweep (or a run it started) is using '{}' (it holds '{}'); wait "
        "for it to finish, or stop it, then run this command again",
        out.string(), lock.string()));
  }
  return fd;
}

// The job array of the last --submit, if SLURM still lists it (pending or running).
std::string queued_array(const fs::path& out) {
  std::ifstream in(out / "slurm_job_id");
  std::string id;
  if (!(in >> id) || id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    return {};
  const Captured q = run_capture({"squeue", "-h", "-j", id, "-o", "%i"});
  if (q.status != 0 || q.out.find_first_not_of(" \n") == std::string::npos) return {};
  return id;
}

int launch_slurm(const Sweep& s, const fs::path& out, const std::vector<Run>& pending, bool submit) {
  const std::string script_text = sbatch_script(sbatch_spec(s, out, pending.size()));
  std::ofstream list(out / "pending.txt");
  for (const auto& r : pending) list << r.id << "\n";
  list.close();
  const fs::path script = out / "sweep.sbatch";
  std::ofstream(script) << script_text;
  fs::permissions(script, fs::perms::owner_exec, fs::perm_options::add);
  fmt::print("[sweep] wrote {} ({} array tasks)\n", script.string(), pending.size());
  if (!submit) {
    fmt::print("[sweep] submit with: sbatch {}\n", shell_quote(script.string()));
    return 0;
  }
  const Captured sb = run_capture({"sbatch", "--parsable", script.string()});
  std::string id = sb.out.substr(0, sb.out.find_first_of(";\r\n"));
  require_usage(sb.status == 0 && !id.empty() &&
                    id.find_first_not_of("0123456789") == std::string::npos,
                fmt::format("sbatch failed (exit {}): is SLURM running and SLURM_CONF set?",
                            sb.status));
  std::ofstream(out / "slurm_job_id") << id << "\n";
  fmt::print("[sweep] submitted job array {}\n", id);
  return 0;
}

// The resolved config of every run, in run order; UsageError naming the first run that does
// not validate.
std::vector<std::string> resolve_runs(const Sweep& s, const std::vector<Run>& runs) {
  std::vector<std::string> texts;
  for (const auto& r : runs) {
    std::vector<std::string> ov = s.overrides;
    std::string what;
    for (const auto& [k, v] : r.values) {
      ov.push_back(k + "=" + v.yaml);
      what += (what.empty() ? "" : ", ") + k + "=" + v.shown;
    }
    ov.push_back("output.path=" + yaml_text(YAML::Node((r.dir / "metrics.h5").string())));
    std::string error;
    texts.push_back(resolve_run(s.base_text, ov, s.base_source, error));
    if (error.empty()) continue;
    if (s.base_outside) {  // Note [A base outside the sweep]
      std::string without_base;
      resolve_run("{}", ov, s.base_source, without_base);
      if (without_base != error)
        error = fmt::format("the base config '{}' does not validate with this run's values (it "
                            "lies outside the sweep's directory, so its contents are not shown; "
                            "`cohort validate` on it says why)",
                            s.base_source);
    }
    throw UsageError(fmt::format("sweep run {} ({}): {}", r.id, printable(what), error));
  }
  return texts;
}

}  // namespace

std::vector<std::string> resolve_sweep_file(const std::string& sweep_path, const std::string& out) {
  const Sweep s = load_sweep(sweep_path);
  const fs::path dir = fs::absolute(out).lexically_normal();
  const std::vector<Run> runs = expand(s, dir);
  check_sbatch_options(sbatch_spec(s, dir, runs.size()));
  return resolve_runs(s, runs);
}

int run_sweep_command(const SweepCommandOptions& o) {
  const Sweep s = load_sweep(o.sweep);
  const fs::path out = fs::absolute(o.out).lexically_normal();
  const std::vector<Run> runs = expand(s, out);
  // Every check before anything is written or started: the script's options, then every run.
  check_sbatch_options(sbatch_spec(s, out, runs.size()));
  if (o.launcher == "slurm") require_printable("--out", out.string());
  const std::vector<std::string> texts = resolve_runs(s, runs);
  // The sweep writes manifest.csv, manifest.json, sweep.sbatch, ... into --out: only into a new
  // or empty directory, or one that an earlier sweep wrote (it has sweep.lock or manifest.json).
  std::error_code ec;
  if (fs::exists(out, ec)) {
    require_usage(fs::is_directory(out, ec),
                  fmt::format("--out: '{}' exists and is not a directory", out.string()));
    require_usage(fs::is_empty(out, ec) || fs::exists(out / "sweep.lock", ec) ||
                      fs::exists(out / "manifest.json", ec),
                  fmt::format("--out: '{}' is neither empty nor the directory of a sweep (no "
                              "sweep.lock or manifest.json); its files are left as they are: "
                              "choose a new or empty directory",
                              out.string()));
  }
  fs::create_directories(out / "runs", ec);
  require_usage(!ec, fmt::format("--out: cannot create '{}': {}", out.string(), ec.message()));
  const int lock_fd = lock_out_dir(out);  // held until exit (Note [One sweep per directory])
  (void)lock_fd;
  if (const std::string id = queued_array(out); !id.empty())
    throw UsageError(fmt::format(
        "--out: the job array {} submitted for '{}' is still queued or running; wait for it "
        "(squeue -j {}) or cancel it (scancel {}) first",
        id, out.string(), id, id));
  std::vector<Run> pending;
  std::size_t completed = 0, in_use = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    fs::create_directories(runs[i].dir);
    const fs::path cfg_path = runs[i].dir / "config.yaml";
    const std::string text = "# run " + runs[i].id + " of sweep " + printable(s.file.string()) +
                             "\n" + texts[i];
    std::ofstream(cfg_path) << text;
    // The config exactly as `cohort run` will resolve it from this file, and store it.
    const std::string expected =
        Config::from_text(text, {}, algo::run_schema(), cfg_path.string()).resolved_text();
    const RunState st = run_state(runs[i].dir / "metrics.h5", expected);
    if (st.kind == RunState::kCompleted) {
      ++completed;
    } else if (st.kind == RunState::kInUse) {
      ++in_use;
      fmt::print("[sweep] {}: its results file is being written by another process: not "
                 "started\n", runs[i].id);
    } else {
      if (st.stale)
        fmt::print("[sweep] {}: results file ({}) was made with another config: runs again\n",
                   runs[i].id, st.status);
      pending.push_back(runs[i]);
    }
  }
  write_manifest(out, s, runs);
  fmt::print("[sweep] {} runs ({} completed, {} to run{}), {} ranks each; manifest: {}\n",
             runs.size(), completed, pending.size(),
             in_use ? fmt::format(", {} in use elsewhere", in_use) : std::string(), s.np,
             (out / "manifest.csv").string());
  std::fflush(stdout);
  if (o.launcher == "none") return 0;
  if (pending.empty()) {
    fmt::print("[sweep] nothing to run: {}\n",
               in_use ? "the other runs are being written by other processes"
                      : "every results file says completed, with this config");
    return 0;
  }
  if (o.launcher == "slurm") return launch_slurm(s, out, pending, o.submit);
  std::vector<LocalRun> local;
  for (const auto& r : pending) local.push_back({r.id, r.dir});
  return launch_local(local, s.np, o.jobs > 0 ? o.jobs : s.local_jobs);
}

}  // namespace cohort
