#include "app/launch.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace cohort {

namespace {
constexpr int kWatched[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
constexpr int kExitUsage = 2;
}  // namespace

std::optional<std::vector<std::string>> launcher_command(int argc, char** argv, int np) {
  std::vector<std::string> args;
  const char* launcher = std::getenv("MPIEXEC");
  std::istringstream words(launcher != nullptr ? launcher : "");
  for (std::string w; words >> w;) args.push_back(w);
  if (args.empty()) args.emplace_back("mpiexec");
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    fmt::print(stderr, "cohort: error: cannot find this executable to relaunch it\n");
    return std::nullopt;
  }
  self[len] = '\0';
  args.insert(args.end(), {"-n", std::to_string(np), self});
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return args;
}

// Note [Launching under mpiexec].
int run_under_launcher(int argc, char** argv, int np) {
  auto command = launcher_command(argc, argv, np);
  if (!command) return kExitUsage;
  std::vector<std::string>& args = *command;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  sigset_t watched, old;
  sigemptyset(&watched);
  for (int sig : kWatched) sigaddset(&watched, sig);
  sigaddset(&watched, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &watched, &old);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &old);
  posix_spawnattr_setsigdefault(&attr, &watched);
  std::fflush(stdout);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargs[0], &fa, &attr, cargs.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    fmt::print(stderr, "cohort: error: cannot start {} to run {} ranks: {}\n", args[0], np,
               std::strerror(rc));
    return kExitUsage;
  }

  bool told = false;
  for (;;) {
    const int sig = sigwaitinfo(&watched, nullptr);
    if (sig < 0) {
      if (errno == EINTR) continue;
      fmt::print(stderr, "cohort: error: sigwaitinfo: {}\n", std::strerror(errno));
      kill(pid, SIGUSR1);
      continue;
    }
    if (sig == SIGCHLD) {
      int status = 0;
      const pid_t done = waitpid(pid, &status, WNOHANG);
      if (done != pid) continue;
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    if (!told)
      fmt::print(stderr, "cohort: {}: asking the {} ranks to stop after their round\n",
                 strsignal(sig), np);
    told = true;
    kill(pid, SIGUSR1);  // the launcher forwards it to every rank
  }
}

}  // namespace cohort
