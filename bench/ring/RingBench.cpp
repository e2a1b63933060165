// attnc_ring_bench: ring attention with P ranks on one machine against the single-process flash
// kernel on the same inputs (distributed/RingBenchmark.h), for docs/distributed.md's table:
//
//   mpirun -np P build/bench/ring/attnc_ring_bench [--length S] [--heads H] [--head-dim D]
//          [--dtype fp32|bf16] [--no-causal] [--layout zigzag|contiguous] [--repeat N]
//          [--threads-per-rank T] [--threads-single T]
//
// Rank 0 prints one line of results; exit status 0 on success, 2 on a usage error, 1 when the ring's
// output differs from the single-process kernel's by more than 1e-4 (a check, not a timing).

#include <mpi.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "distributed/RingBenchmark.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);

  attnc::distributed::RingBenchmarkConfig config;
  std::string dtype = "fp32", layout = "zigzag";
  bool no_causal = false;
  CLI::App app{"Ring attention over MPI against the single-process flash kernel (run under mpirun)."};
  app.add_option("--length", config.length, "sequence length S (q_len = kv_len; default 4096)");
  app.add_option("--heads", config.heads, "query heads (default 8)");
  app.add_option("--kv-heads", config.kv_heads, "K/V heads (default 8)");
  app.add_option("--head-dim", config.head_dim, "head dim D = D_v (default 128)");
  app.add_option("--dtype", dtype, "fp32 or bf16 (default fp32)")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--no-causal", no_causal, "no mask (default: causal)");
  app.add_option("--layout", layout, "zigzag or contiguous (default zigzag)")
      ->check(CLI::IsMember({"zigzag", "contiguous"}));
  app.add_option("--repeat", config.repeats, "timed runs of each; the median is reported (default 3)");
  app.add_option("--threads-per-rank", config.threads_per_rank, "each rank's kernel threads (default: all)");
  app.add_option("--threads-single", config.threads_single, "the single-process kernel's threads (default: all)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = rank == 0 ? app.exit(e) : 0;
    MPI_Finalize();
    return code == 0 ? 0 : 2;
  }
  config.dtype = dtype == "bf16" ? attnc::DType::BF16 : attnc::DType::F32;
  config.causal = !no_causal;
  config.layout = layout == "contiguous" ? attnc::distributed::ShardLayout::Contiguous
                                         : attnc::distributed::ShardLayout::ZigZag;

  int status = 0;
  try {
    const auto result = attnc::distributed::benchmark_ring(MPI_COMM_WORLD, config);
    if (rank == 0) {
      const auto& s = result.root_stats;
      std::printf(
          "ranks %d  S %lld  H %lld/%lld  D %lld  %s  %s  %s  ring %.3f s  single %.3f s  overhead %.3f  "
          "root: compute %.3f s, wait %.3f s, blocks %lld computed / %lld skipped, %.1f MB sent  max|diff| %.2e\n",
          result.ranks, static_cast<long long>(config.length), static_cast<long long>(config.heads),
          static_cast<long long>(config.kv_heads), static_cast<long long>(config.head_dim), dtype.c_str(),
          config.causal ? "causal" : "no mask", layout.c_str(), result.ring_seconds, result.single_seconds,
          result.overhead, s.compute_seconds, s.wait_seconds, static_cast<long long>(s.blocks_computed),
          static_cast<long long>(s.blocks_skipped), static_cast<double>(s.bytes_sent) / 1e6, result.max_error);
      if (!(result.max_error <= 1e-4)) status = 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnc_ring_bench (rank %d): %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return status;
}
