#include "bench/suite/FmaPeak.h"

#include <catch2/catch.hpp>

using namespace attnc::bench;

TEST_CASE("the FMA peaks run every loop the CPU has and say why the others did not run", "[bench][peak]") {
  FmaPeaks peaks = measure_fma_peaks(1);
  CHECK(peaks.threads == 1);
  REQUIRE(peaks.loops.size() == 3);
  CHECK(peaks.loops[0].name == "avx512-fp32");
  CHECK(peaks.loops[1].name == "avx2-fp32");
  CHECK(peaks.loops[2].name == "avx512-bf16");
  CHECK(peaks.loops[2].instruction == "vdpbf16ps zmm");
  CHECK(peaks.loops[2].flops_per_instruction == 64);
  for (const FmaLoop& loop : peaks.loops) {
    CAPTURE(loop.name, loop.gflops, loop.unavailable_reason);
    if (loop.available) {
      CHECK(loop.gflops > 1.0);  // any core of the last 15 years does a few GFLOP/s
      CHECK(loop.unavailable_reason.empty());
    } else {
      CHECK(loop.gflops == 0);
      CHECK_THAT(loop.unavailable_reason, Catch::StartsWith("this CPU lacks") || Catch::Contains("x86-64"));
    }
  }
#if defined(__x86_64__)
  CHECK(peaks.loops[0].available == (__builtin_cpu_supports("avx512f") != 0));
  CHECK(peaks.loops[2].available ==
        (__builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512bf16") != 0));
#endif
  if (peaks.loops[1].available) {
    REQUIRE(peaks.peak("fp32").has_value());
    CHECK(*peaks.peak("fp32") >= peaks.loops[1].gflops);
  }
  CHECK(peaks.peak("bf16").has_value() == peaks.loops[2].available);
  CHECK_FALSE(peaks.peak("fp64").has_value());
}
