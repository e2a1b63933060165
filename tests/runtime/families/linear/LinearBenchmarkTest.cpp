#include "runtime/families/linear/LinearBenchmark.h"

#include <catch2/catch.hpp>

using namespace attnc;

TEST_CASE("the linear attention benchmark runs on small sizes and counts its flops", "[linear][benchmark]") {
  // Only that it runs and what it counts: timings belong to docs/cpu-backend.md, measured elsewhere.
  LinearBenchmarkConfig config;
  config.heads = 2;
  config.length = 100;
  config.head_dim = 16;
  config.chunk_size = 32;
  config.repeats = 1;
  const LinearBenchmarkResult r = benchmark_linear_attention(config);
  CHECK(r.seconds > 0);
  CHECK(r.sgemm_gflops > 0);
  // 4 chunks, 3 state increments: 3 * 32 * 16 * 17 + 100 * 16 * 17 + 100 * 32 * 16 + 100 * 32 * 17 per pair.
  CHECK(r.flops == 2 * 2 * (3 * 32 * 16 * 17 + 100 * 16 * 17 + 100 * 32 * 16 + 100 * 32 * 17));
  CHECK(r.fraction == Approx(r.gflops / r.sgemm_gflops));
}
