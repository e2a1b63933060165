// Catch2's main for the MPI tests, run as `mpirun -np P test_distributed_mpi`: every rank runs every
// test (the tests are collectives), rank 0 reports in full, the others with the compact reporter
// (failures and one summary line). The exit status is non-zero when any rank failed.

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <mpi.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Catch::Session session;
  int status = session.applyCommandLine(argc, argv);
  if (status == 0) {
    if (rank != 0) session.configData().reporterName = "compact";
    status = session.run();
  }
  int worst = 0;
  MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
