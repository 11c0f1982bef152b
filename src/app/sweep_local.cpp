#include "app/sweep_local.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "algo/runner.h"
#include "metrics/results_claim.h"

extern char** environ;

namespace cohort {
namespace fs = std::filesystem;
namespace {

// The status a results file states, for progress lines.
std::string status_text(const fs::path& results) {
  const metrics::ResultsFileInfo info = metrics::inspect_results_file(results.string());
  if (info.kind == metrics::ResultsFileInfo::Kind::kResults) return info.status;
  return info.kind == metrics::ResultsFileInfo::Kind::kMissing ? "missing" : "not a results file";
}

// Signals the local launcher forwards to its runs (Note [Stopping a local sweep]).
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP};

// Note [Stopping a local sweep]: the launcher blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD and
// waits for them with sigwaitinfo, so no signal is lost between two waits. Each run starts in
// its own process group (mpirun and its ranks, or one `cohort run`) with those signals back at
// their defaults; a signal to the sweep is forwarded to every running group as SIGUSR1, no new
// run starts, and the sweep returns only after every run has exited (each writes status `preempted`), with
// exit code 130 like `cohort run`. Rerunning the sweep resumes. SIGUSR1 rather than the signal
// received: `cohort run` stops the same way on SIGINT, SIGTERM and SIGUSR1, but Open MPI's
// mpirun, given SIGTERM or SIGINT, SIGKILLs its ranks a second later and exits 1, while SIGUSR1
// it forwards to the ranks and waits for them (README "Checkpoints, resuming and preemption").
class SignalScope {
 public:
  SignalScope() {
    sigemptyset(&set_);
    for (int sig : kForwarded) sigaddset(&set_, sig);
    sigaddset(&set_, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SignalScope() {
    // Drop what is still pending (a second signal after the last run ended), then unblock.
    const timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  const sigset_t& watched() const { return set_; }
  const sigset_t& original() const { return old_; }

 private:
  sigset_t set_{}, old_{};
};

pid_t start_run(const SignalScope& signals, std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &signals.original());
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : kForwarded) sigaddset(&defaults, sig);
  sigaddset(&defaults, SIGCHLD);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw std::runtime_error(fmt::format("cannot start '{}': {}", args[0], std::strerror(rc)));
  return pid;
}

// Local launcher: a pool of `jobs` runs at once, each `mpirun -np P cohort run config`.
}  // namespace

int launch_local(const std::vector<LocalRun>& pending, int np, int jobs) {
  if (geteuid() == 0) {  // Open MPI refuses root unless told (README "Running with mpirun")
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  if (np > static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)))
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const SignalScope signals;
  std::map<pid_t, const LocalRun*> running;
  std::vector<const LocalRun*> failed;
  std::size_t next = 0, done = 0;
  int stop = 0;  // the signal that stopped the sweep
  const auto t0 = std::chrono::steady_clock::now();
  auto finished = [&](pid_t pid) {
    const auto it = running.find(pid);
    if (it == running.end()) return;
    const LocalRun* r = it->second;
    running.erase(it);
    ++done;
    const std::string st = status_text(r->dir / "metrics.h5");
    if (st != "completed") failed.push_back(r);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("[sweep] {}/{} done ({} failed) | {} {} | {:.0f}s elapsed, ETA {:.0f}s\n", done,
               pending.size(), failed.size(), r->id, st, el,
               el / static_cast<double>(done) * static_cast<double>(pending.size() - done));
    std::fflush(stdout);
  };
  while (true) {
    while (stop == 0 && running.size() < static_cast<std::size_t>(jobs) && next < pending.size()) {
      const LocalRun& r = pending[next++];
      std::vector<std::string> args;
      if (np > 1) args = {"mpirun", "-np", std::to_string(np)};
      // The sweep decided to (re)run this one: replace a stale or unfinished results file.
      args.insert(args.end(),
                  {exe, "run", "--resume", "--overwrite", (r.dir / "config.yaml").string()});
      running[start_run(signals, args, (r.dir / "log.txt").string())] = &r;
    }
    if (running.empty()) break;
    const int sig = sigwaitinfo(&signals.watched(), nullptr);
    if (sig < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("sigwaitinfo: ") + std::strerror(errno));
    }
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) finished(pid);
      continue;
    }
    if (stop == 0)
      fmt::print(stderr, "[sweep] {}: stopping {} running run(s), not starting {} more\n",
                 strsignal(sig), running.size(), pending.size() - next);
    stop = sig;
    for (const auto& [pid, r] : running) kill(-pid, SIGUSR1);  // Note [Stopping a local sweep]
  }
  for (const LocalRun* r : failed)
    fmt::print(stderr, "[sweep] {}: {} (status {}), log: {}\n", stop ? "not completed" : "failed", r->id,
               status_text(r->dir / "metrics.h5"), (r->dir / "log.txt").string());
  if (stop != 0) {
    fmt::print(stderr, "[sweep] stopped by {}: run the same command again to resume\n",
               strsignal(stop));
    return algo::kExitPreempted;
  }
  return failed.empty() ? 0 : 1;
}

}  // namespace cohort
