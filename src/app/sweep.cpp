#include "app/sweep.h"

#include <hdf5.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "algo/exchange.h"
#include "algo/fedavg.h"
#include "compress/compressor.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/schema.h"

extern char** environ;

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

struct Axis {
  std::string key;
  std::vector<std::string> values;  // YAML flow text of each value
};

struct Run {
  std::string id;
  std::vector<std::pair<std::string, std::string>> values;  // swept key -> value text
  fs::path dir;
};

struct Sweep {
  fs::path file;
  std::string base_text, base_source;
  std::vector<std::string> overrides;
  std::vector<Axis> grid, zip;
  std::vector<std::string> seeds;
  int np = 1;
  int local_jobs = 1;
  std::map<std::string, std::string> slurm;
  std::vector<std::string> slurm_extra;
};

std::string flow(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

[[noreturn]] void sweep_error(const Sweep& s, const std::string& msg) {
  throw UsageError(fmt::format("{}: {}", s.file.string(), msg));
}

void check_keys(const Sweep& s, const YAML::Node& map, const std::string& where,
                const std::vector<std::string>& valid) {
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

std::vector<Axis> axes(const Sweep& s, const YAML::Node& node, const std::string& name) {
  std::vector<Axis> out;
  if (!node) return out;
  if (!node.IsMap()) sweep_error(s, name + " must map dotted keys to lists of values");
  for (const auto& kv : node) {
    Axis a{kv.first.as<std::string>(), {}};
    if (!kv.second.IsSequence() || kv.second.size() == 0)
      sweep_error(s, fmt::format("{}.{} must be a non-empty list of values", name, a.key));
    for (const auto& v : kv.second) a.values.push_back(flow(v));
    out.push_back(std::move(a));
  }
  return out;
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
  if (!root.IsMap()) sweep_error(s, "a sweep file is a mapping (base, grid, zip, seeds, ...)");
  check_keys(s, root, "", {"base", "overrides", "grid", "zip", "seeds", "np", "slurm", "local"});
  if (!root["base"]) sweep_error(s, "'base' (the base config file) is required");
  const fs::path base = s.file.parent_path() / root["base"].as<std::string>();
  std::ifstream in(base);
  if (!in) sweep_error(s, fmt::format("base config '{}' cannot be opened", base.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  s.base_text = ss.str();
  s.base_source = base.lexically_normal().string();
  if (const auto ov = root["overrides"]) {
    if (!ov.IsMap()) sweep_error(s, "overrides must map dotted keys to values");
    for (const auto& kv : ov) s.overrides.push_back(kv.first.as<std::string>() + "=" + flow(kv.second));
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
      if (n < 1) sweep_error(s, "seeds: an integer n >= 1 (seeds 0..n-1) or a list of seeds");
      for (int i = 0; i < n; ++i) s.seeds.push_back(std::to_string(i));
    } else {
      for (const auto& v : seeds) s.seeds.push_back(flow(v));
    }
  }
  if (root["np"]) s.np = root["np"].as<int>();
  if (s.np < 1) sweep_error(s, "np (ranks per run) must be >= 1");
  if (const auto local = root["local"]) {
    check_keys(s, local, "local.", {"jobs"});
    if (local["jobs"]) s.local_jobs = local["jobs"].as<int>();
  }
  s.slurm = {{"partition", ""}, {"time", "01:00:00"}, {"nodes", "1"},
             {"ntasks", std::to_string(s.np)}, {"cpus_per_task", "1"}, {"account", ""},
             {"overcommit", "false"}, {"launch", "srun"}};
  if (const auto sl = root["slurm"]) {
    std::vector<std::string> valid{"extra"};
    for (const auto& [k, v] : s.slurm) valid.push_back(k);
    check_keys(s, sl, "slurm.", valid);
    for (const auto& kv : sl) {
      const std::string k = kv.first.as<std::string>();
      if (k == "extra") {
        for (const auto& line : kv.second) s.slurm_extra.push_back(line.as<std::string>());
      } else {
        s.slurm[k] = kv.second.as<std::string>();
      }
    }
    if (s.slurm["launch"] != "srun" && s.slurm["launch"] != "mpirun")
      sweep_error(s, "slurm.launch must be srun (srun --mpi=pmix) or mpirun");
  }
  return s;
}

std::string slug(const std::string& key, const std::string& value) {
  std::string k = key.substr(key.rfind('.') + 1), out = k + "-";
  for (char c : value) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

std::vector<Run> expand(const Sweep& s, const fs::path& out) {
  std::vector<std::vector<std::pair<std::string, std::string>>> combos = {{}};
  for (const auto& a : s.grid) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& c : combos)
      for (const auto& v : a.values) {
        auto e = c;
        e.emplace_back(a.key, v);
        next.push_back(std::move(e));
      }
    combos = std::move(next);
  }
  if (!s.zip.empty()) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& c : combos)
      for (std::size_t i = 0; i < s.zip.front().values.size(); ++i) {
        auto e = c;
        for (const auto& a : s.zip) e.emplace_back(a.key, a.values[i]);
        next.push_back(std::move(e));
      }
    combos = std::move(next);
  }
  if (!s.seeds.empty()) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
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
    for (const auto& [k, v] : combos[i]) id += "_" + slug(k, v);
    if (id.size() > 96) id.resize(96);
    runs.push_back(Run{id, combos[i], out / "runs" / id});
  }
  return runs;
}

// Cheap checks that would otherwise fail only when a run starts.
void check_run(const Config& cfg) {
  algo::ExchangeOptions::from_config(cfg);
  compress::make_compressor(algo::compressor_options(cfg, "compressor"));
  compress::make_compressor(algo::compressor_options(cfg, "downlink_compressor"));
  if (cfg.get_string("algorithm.name") == "fedavg") algo::FedAvgOptions::from_config(cfg);
  const long long n = cfg.get_int("clients.num_clients"), m = cfg.get_int("clients.per_round");
  require_usage(m <= n, fmt::format("clients.per_round = {} exceeds clients.num_clients = {}", m, n));
}

std::string results_status(const fs::path& file) {
  if (!fs::exists(file)) return "missing";
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return "unreadable";
  std::string status = "unknown";
  if (H5Aexists(f, "status") > 0) {
    const hid_t a = H5Aopen(f, "status", H5P_DEFAULT);
    const hid_t t = H5Aget_type(a);
    if (H5Tis_variable_str(t) > 0) {
      char* text = nullptr;
      const hid_t mem = H5Tcopy(H5T_C_S1);
      H5Tset_size(mem, H5T_VARIABLE);
      H5Tset_cset(mem, H5T_CSET_UTF8);
      if (H5Aread(a, mem, &text) >= 0 && text) {
        status = text;
        H5free_memory(text);
      }
      H5Tclose(mem);
    }
    H5Tclose(t);
    H5Aclose(a);
  }
  H5Fclose(f);
  return status;
}

std::string csv_cell(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string json_string(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
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
      csv << "," << csv_cell(r.values[j].second);
      js << (j ? ", " : "") << json_string(r.values[j].first) << ": "
         << json_string(r.values[j].second);
    }
    csv << "," << csv_cell((r.dir / "config.yaml").string()) << ","
        << csv_cell((r.dir / "metrics.h5").string()) << "\n";
    js << "}, \"config\": " << json_string((r.dir / "config.yaml").string())
       << ", \"results\": " << json_string((r.dir / "metrics.h5").string()) << "}"
       << (i + 1 < runs.size() ? ",\n" : "\n");
  }
  js << "]}\n";
}

fs::path self_exe() { return fs::read_symlink("/proc/self/exe"); }

// Local launcher: a pool of `jobs` runs at once, each `mpirun -np P cohort run config`.
int launch_local(const Sweep& s, const std::vector<Run>& pending, int jobs) {
  if (geteuid() == 0) {  // Open MPI refuses root unless told (README "Running with mpirun")
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  if (s.np > static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)))
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  const std::string exe = self_exe().string();
  std::map<pid_t, const Run*> running;
  std::vector<const Run*> failed;
  std::size_t next = 0, done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (done < pending.size()) {
    while (running.size() < static_cast<std::size_t>(jobs) && next < pending.size()) {
      const Run& r = pending[next++];
      const std::string config = (r.dir / "config.yaml").string(), log = (r.dir / "log.txt").string();
      std::vector<std::string> args;
      if (s.np > 1) args = {"mpirun", "-np", std::to_string(s.np)};
      args.insert(args.end(), {exe, "run", config});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
      pid_t pid = 0;
      const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&fa);
      if (rc != 0) throw std::runtime_error(fmt::format("cannot start '{}': {}", args[0], std::strerror(rc)));
      running[pid] = &r;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    const Run* r = running.at(pid);
    running.erase(pid);
    ++done;
    const std::string st = results_status(r->dir / "metrics.h5");
    if (st != "completed") failed.push_back(r);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("[sweep] {}/{} done ({} failed) | {} {} | {:.0f}s elapsed, ETA {:.0f}s\n", done,
               pending.size(), failed.size(), r->id, st, el,
               el / static_cast<double>(done) * static_cast<double>(pending.size() - done));
    std::fflush(stdout);
  }
  for (const Run* r : failed)
    fmt::print(stderr, "[sweep] failed: {} (status {}), log: {}\n", r->id,
               results_status(r->dir / "metrics.h5"), (r->dir / "log.txt").string());
  return failed.empty() ? 0 : 1;
}

int launch_slurm(const Sweep& s, const fs::path& out, const std::vector<Run>& pending, bool submit) {
  std::ofstream list(out / "pending.txt");
  for (const auto& r : pending) list << r.id << "\n";
  list.close();
  const fs::path script = out / "sweep.sbatch";
  std::ofstream sb(script);
  auto sl = s.slurm;
  sb << "#!/bin/bash\n# Generated by `cohort sweep` from " << s.file.string() << "\n"
     << "#SBATCH --job-name=cohort-sweep\n"
     << fmt::format("#SBATCH --array=0-{}\n", pending.size() - 1)
     << "#SBATCH --nodes=" << sl["nodes"] << "\n#SBATCH --ntasks=" << sl["ntasks"]
     << "\n#SBATCH --cpus-per-task=" << sl["cpus_per_task"] << "\n#SBATCH --time=" << sl["time"]
     << "\n#SBATCH --output=" << (out / "runs" / "slurm-%A_%a.out").string() << "\n";
  if (!sl["partition"].empty()) sb << "#SBATCH --partition=" << sl["partition"] << "\n";
  if (!sl["account"].empty()) sb << "#SBATCH --account=" << sl["account"] << "\n";
  if (sl["overcommit"] == "true") sb << "#SBATCH --overcommit\n";
  for (const auto& line : s.slurm_extra) sb << line << "\n";
  sb << "set -euo pipefail\n"
     << "RUN=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " << (out / "pending.txt").string() << ")\n"
     << "DIR=" << (out / "runs").string() << "/$RUN\n";
  if (sl["launch"] == "srun") {
    sb << "srun --mpi=pmix -n \"$SLURM_NTASKS\" " << self_exe().string()
       << " run \"$DIR/config.yaml\" > \"$DIR/log.txt\" 2>&1\n";
  } else {
    sb << "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n"
       << "mpirun -np \"$SLURM_NTASKS\" " << self_exe().string()
       << " run \"$DIR/config.yaml\" > \"$DIR/log.txt\" 2>&1\n";
  }
  sb.close();
  fs::permissions(script, fs::perms::owner_exec, fs::perm_options::add);
  fmt::print("[sweep] wrote {} ({} array tasks)\n", script.string(), pending.size());
  if (!submit) {
    fmt::print("[sweep] submit with: sbatch {}\n", script.string());
    return 0;
  }
  const std::string cmd = "sbatch --parsable " + script.string();
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run sbatch");
  char buf[256] = {0};
  std::string id;
  while (fgets(buf, sizeof buf, p)) id += buf;
  const int rc = pclose(p);
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  require_usage(rc == 0 && !id.empty(),
                fmt::format("sbatch failed (exit {}): is SLURM running and SLURM_CONF set?", rc));
  if (auto semi = id.find(';'); semi != std::string::npos) id.resize(semi);
  std::ofstream(out / "slurm_job_id") << id << "\n";
  fmt::print("[sweep] submitted job array {}\n", id);
  return 0;
}

}  // namespace

int run_sweep_command(const SweepCommandOptions& o) {
  const Sweep s = load_sweep(o.sweep);
  const fs::path out = fs::absolute(o.out).lexically_normal();
  const std::vector<Run> runs = expand(s, out);
  // Validate every run before anything is written or started.
  std::vector<std::string> texts;
  for (const auto& r : runs) {
    std::vector<std::string> ov = s.overrides;
    std::string what;
    for (const auto& [k, v] : r.values) {
      ov.push_back(k + "=" + v);
      what += (what.empty() ? "" : ", ") + k + "=" + v;
    }
    ov.push_back("output.path=" + (r.dir / "metrics.h5").string());
    try {
      const Config cfg = Config::from_text(s.base_text, ov, run_schema(), s.base_source);
      check_run(cfg);
      texts.push_back(cfg.resolved_text());
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("sweep run {} ({}): {}", r.id, what, e.what()));
    }
  }
  std::error_code ec;
  fs::create_directories(out / "runs", ec);
  require_usage(!ec, fmt::format("--out: cannot create '{}': {}", out.string(), ec.message()));
  std::vector<Run> pending;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    fs::create_directories(runs[i].dir);
    const fs::path cfg_path = runs[i].dir / "config.yaml";
    std::ofstream(cfg_path) << "# run " << runs[i].id << " of sweep " << s.file.string() << "\n"
                            << texts[i];
    if (results_status(runs[i].dir / "metrics.h5") != "completed") pending.push_back(runs[i]);
  }
  write_manifest(out, s, runs);
  fmt::print("[sweep] {} runs ({} completed, {} to run), {} ranks each; manifest: {}\n",
             runs.size(), runs.size() - pending.size(), pending.size(), s.np,
             (out / "manifest.csv").string());
  if (o.launcher == "none") return 0;
  if (pending.empty()) {
    fmt::print("[sweep] nothing to run: every results file says completed\n");
    return 0;
  }
  if (o.launcher == "slurm") return launch_slurm(s, out, pending, o.submit);
  return launch_local(s, pending, o.jobs > 0 ? o.jobs : s.local_jobs);
}

}  // namespace cohort
