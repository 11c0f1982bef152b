// Catch2 main for multi-rank tests: initialises MPI, silences stdout on ranks other than 0,
// and makes every rank (and so mpiexec) fail when any rank had a failure.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) std::freopen("/dev/null", "w", stdout);
  const int failures = Catch::Session().run(argc, argv);
  int worst = 0;
  MPI_Allreduce(&failures, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && failures == 0 && worst != 0)
    std::fprintf(stderr, "passed here, but other ranks had failures\n");
  MPI_Finalize();
  return worst == 0 ? 0 : 1;
}
