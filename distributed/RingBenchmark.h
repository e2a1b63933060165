#pragma once
// How much ring attention with P ranks on one machine costs against the single-process flash
// kernel on the same inputs (the overhead of sharding, merging and moving K/V): a library function
// so the CLI (`mpirun -np P attnc bench ...`, wired by the tools) and the tests call the same code.
// Timing numbers are the caller's to report; docs/distributed.md has the place for them.

#include <mpi.h>

#include <cstdint>

#include "distributed/RingAttention.h"

namespace attnc::distributed {

struct RingBenchmarkConfig {
  int64_t batch = 1, heads = 8, kv_heads = 8, length = 4096, head_dim = 128;
  DType dtype = DType::F32;
  bool causal = true;
  ShardLayout layout = ShardLayout::ZigZag;
  int repeats = 3;           // timed runs of each; the median is reported
  int threads_per_rank = 0;  // the ring's local kernel (<= 0: every hardware thread)
  int threads_single = 0;    // the single-process kernel (<= 0: every hardware thread)
  uint32_t seed = 1;
};

struct RingBenchmarkResult {
  int ranks = 0;
  double ring_seconds = 0;    // median over repeats of the slowest rank's wall time
  double single_seconds = 0;  // median over repeats of flash_attention on root alone, whole sequence
  double overhead = 0;        // ring_seconds / single_seconds
  double max_error = 0;       // largest |ring - single| over root's output (a check, not a timing)
  RingStats root_stats;       // the last ring run's, on root
};

// Collective: every rank of `comm` calls it with the same config; root (rank 0) gets the result,
// the others a result with only `ranks` set. Inputs are uniform in [-1, 1) from `seed`. While root
// times the single-process kernel the other ranks wait in a sleeping poll, not a busy MPI barrier,
// so the single run has the machine to itself.
RingBenchmarkResult benchmark_ring(MPI_Comm comm, const RingBenchmarkConfig& config);

}  // namespace attnc::distributed
