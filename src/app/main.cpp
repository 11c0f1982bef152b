// The `cohort` executable: run, validate, list, bench, sweep, compress, aggregate, privacy,
// attack-privacy.
#include <mpi.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "algo/algorithm.h"
#include "algo/problem.h"
#include "algo/run_schema.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "algo/interrupt.h"
#include "algo/run_state.h"
#include "app/aggregate_cmd.h"
#include "app/bench.h"
#include "app/attack_privacy_cmd.h"
#include "app/privacy_cmd.h"
#include "app/launch.h"
#include "app/compress_cmd.h"
#include "app/sweep.h"
#include "comm/communicator.h"
#include "core/build_info.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/isa.h"
#include "core/schema.h"
#include "metrics/results_claim.h"

namespace {

using namespace cohort;

// MPI lifetime for the commands that run collectively.
struct MpiSession {
  MpiSession(int* argc, char*** argv) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

std::unique_ptr<comm::Communicator> make_comm(const std::string& backend) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (backend == "self") {
    require_usage(size == 1, fmt::format("comm.backend = self runs one process, but {} ranks "
                                         "were launched; use mpi or auto", size));
    return comm::make_self_communicator();
  }
  if (backend == "auto" && size == 1) return comm::make_self_communicator();
  return comm::make_mpi_communicator();
}

// Runs a collective command; maps errors to exit codes (docs/architecture.md "Errors").
template <class F>
int collective_command(int* argc, char*** argv, F&& body) {
  MpiSession mpi(argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    return body(rank);
  } catch (const UsageError& e) {
    if (*e.what()) fmt::print(stderr, "cohort: error: {}\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    char host[256] = "?";
    gethostname(host, sizeof host);
    fmt::print(stderr, "cohort: rank {} on {} failed: {}\n", rank, host, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}

// Runs a command that needs no MPI; maps errors to exit codes like collective_command.
template <class F>
int single_process_command(const char* name, F&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    fmt::print(stderr, "cohort: error: {}\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "cohort: {} failed: {}\n", name, e.what());
    return 1;
  }
}

// Whether an MPI launcher started this process (Open MPI, PMI/PMIx, SLURM's srun).
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

// Runs this command again as `mpiexec -n NP cohort ...` (argument vector, no shell); the
// launcher comes from $MPIEXEC (a program and its flags, split at spaces), else `mpiexec` on the
// PATH.
int relaunch_under_mpiexec(int argc, char** argv, int np) {
  auto command = launcher_command(argc, argv, np);
  if (!command) return kExitUsage;
  std::vector<std::string>& args = *command;
  const std::string exe = args[0];
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  std::fflush(stdout);
  execvp(cargs[0], cargs.data());
  fmt::print(stderr, "cohort: error: cannot start {} to run {} ranks: {}\n", exe, np,
             std::strerror(errno));
  return kExitUsage;
}

Config load_collectively(const std::string& path, const std::vector<std::string>& overrides,
                         std::unique_ptr<comm::Communicator>& comm) {
  // Every rank parses the same file; the world communicator checks the outcome together.
  auto world = comm::make_mpi_communicator();
  Config cfg;
  algo::collectively(*world, [&] {
    cfg = Config::load(path, overrides, algo::run_schema());
    comm = make_comm(cfg.get_string("comm.backend"));
  });
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cohort: collaborative-learning simulator (federated, decentralized, robust, "
               "compressed) on MPI"};
  app.set_version_flag("--version", fmt::format("cohort {} (git {})", kVersion, kGitRevision));
  app.require_subcommand(1);

  std::string config_path;
  std::vector<std::string> overrides;
  auto* run = app.add_subcommand("run", "run the experiment a config file describes");
  run->add_option("config", config_path, "YAML config file")->required();
  run->add_option("overrides", overrides, "dotted key=value overrides, e.g. rounds=5 seed=3");
  algo::RunOptions run_opts;
  run->add_flag("--overwrite", run_opts.overwrite,
                "replace an existing results file at output.path (never a file that is not a "
                "cohort results file)");
  run->add_flag("--resume", run_opts.resume,
                "continue from the newest valid checkpoint of this config (checkpoint.path); "
                "without one, start from round 1");
  int run_np = 0;
  run->add_option("--np", run_np,
                  "start N ranks under $MPIEXEC (default mpiexec) and stay between it and the "
                  "signals: SIGINT/SIGTERM/SIGHUP stop the run after its round with exit 130, "
                  "as on the ranks (Open MPI's mpirun alone exits 1 on SIGTERM)")
      ->check(CLI::Range(1, 1 << 20));

  auto* validate = app.add_subcommand("validate", "check a config (and its data) without running");
  validate->add_option("config", config_path, "YAML config file")->required();
  validate->add_option("overrides", overrides, "dotted key=value overrides");

  auto* list = app.add_subcommand("list", "list every config key and component with its options");
  bool markdown = false;
  list->add_flag("--markdown", markdown, "print the config reference as Markdown (README)");

  CompressCommandOptions compress_opts;
  add_compress_command(app, compress_opts);
  auto* compress_cmd = app.get_subcommand("compress");

  AggregateCommandOptions aggregate_opts;
  add_aggregate_command(app, aggregate_opts);
  auto* aggregate_cmd = app.get_subcommand("aggregate");

  SweepCommandOptions sweep_opts;
  add_sweep_command(app, sweep_opts);
  auto* sweep_cmd = app.get_subcommand("sweep");

  auto* bench = app.add_subcommand("bench", "benchmarks");
  BenchOptions bench_opts;
  add_bench_options(*bench, bench_opts);
  PrivacyCommandOptions privacy_opts;
  add_privacy_command(app, privacy_opts);
  AttackPrivacyOptions attack_privacy_opts;
  add_attack_privacy_command(app, attack_privacy_opts);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // A bad command line is a usage error like a bad config: same prefix, exit code 2.
    fmt::print(stderr, "cohort: error: {}\nRun with --help for more information.\n", e.what());
    return kExitUsage;
  }

  if (*list) {
    std::cout << (markdown ? schema_markdown(algo::run_schema())
                           : schema_listing(algo::run_schema()));
    return 0;
  }
  if (*bench && bench_opts.what == "exchange") {
    if (bench_opts.np > 1 && !launched_by_mpi())
      return relaunch_under_mpiexec(argc, argv, bench_opts.np);
    return collective_command(&argc, &argv, [&](int) { return run_exchange_bench(bench_opts); });
  }
  if (*bench) return single_process_command("bench", [&] {
    active_isa();  // COHORT_ISA is checked before any work
    return run_bench(bench_opts);
  });
  if (*app.get_subcommand("privacy"))
    return single_process_command("privacy", [&] { return run_privacy_command(privacy_opts); });
  if (*app.get_subcommand("attack-privacy"))
    return single_process_command("attack-privacy", [&] {
      return run_attack_privacy_command(app, attack_privacy_opts);
    });
  if (*sweep_cmd) return single_process_command("sweep", [&] { return run_sweep_command(sweep_opts); });
  if (*compress_cmd)
    return single_process_command("compress", [&] { return run_compress_command(compress_opts); });
  if (*aggregate_cmd)
    return single_process_command("aggregate",
                                  [&] { return run_aggregate_command(aggregate_opts); });

  if (*run && run_np > 0 && !launched_by_mpi())  // Note [Launching under mpiexec]
    return run_under_launcher(argc, argv, run_np);
  algo::install_interrupt_handlers();
  return collective_command(&argc, &argv, [&](int rank) {
    active_isa();  // COHORT_ISA is checked before any work
    std::unique_ptr<comm::Communicator> comm;
    const Config cfg = load_collectively(config_path, overrides, comm);
    if (*validate) {
      // The same build run makes before its first round (Note [One setup for run and validate]).
      const algo::RunState setup = algo::build(cfg, *comm);
      std::string note;  // and output.path, as run would claim it
      algo::collectively(*comm, [&] {
        if (rank == 0) note = metrics::check_results_path(cfg.get_string("output.path"));
      });
      if (rank == 0 && !note.empty()) fmt::print("note: {}\n", note);
      const std::int64_t params = setup.problem->num_params();
      if (rank == 0)
        fmt::print("{}\n{}", setup.problem->description(), setup.problem->model_summary());
      if (rank == 0) fmt::print("{}: valid ({} parameters)\n", config_path, params);
      return 0;
    }
    const auto outcome = algo::run_experiment(cfg, *comm, run_opts);
    if (outcome.status == "diverged") return algo::kExitDiverged;
    if (outcome.status == "preempted") return algo::kExitPreempted;
    return 0;
  });
}
