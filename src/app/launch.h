// `cohort run --np N`: cohort starts its own MPI launcher and stands between it and the signals.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cohort {

// `$MPIEXEC -n NP <this executable> argv[1..]` as an argument vector ($MPIEXEC split at spaces,
// default `mpiexec`); nullopt (after printing why) when this executable cannot be found.
std::optional<std::vector<std::string>> launcher_command(int argc, char** argv, int np);

// Note [Launching under mpiexec]: Open MPI's mpirun, given SIGTERM or SIGINT, SIGKILLs its ranks
// a second later and exits 1, whatever the ranks were doing, while SIGUSR1 it forwards to the
// ranks and then returns their exit code. `cohort run --np N` (when not already started by an
// MPI launcher) therefore runs `$MPIEXEC -n N cohort run ...` (argument vector, no shell;
// $MPIEXEC is split at spaces, default `mpiexec`) as a child in its own process group, with
// stdin from /dev/null (a background group must not read the terminal), and waits for it with
// SIGINT, SIGTERM, SIGHUP and SIGUSR1 blocked: each is passed on to the launcher as SIGUSR1, so
// every rank finishes its round, writes the checkpoint and exits 130, and so does cohort. A
// signal reaching the ranks directly, the launcher's SIGUSR1, or this process gives the same
// outcome. Returns the child's exit code (128 + signal when it was killed).
int run_under_launcher(int argc, char** argv, int np);

}  // namespace cohort
