#pragma once
// The FMA peak of the cores the bench runs on: what the multiply-add units deliver when nothing
// but multiply-adds run, measured rather than computed from a datasheet (clock speeds under load,
// SMT siblings and virtual machines make datasheet numbers wrong). One short loop per instruction
// set, of independent multiply-adds on registers only (no memory traffic), run on every bench
// thread at once:
//
//   avx512-fp32  vfmadd231ps zmm  16 fp32 lanes x 2 flops      = 32 flops per instruction
//   avx2-fp32    vfmadd231ps ymm   8 fp32 lanes x 2 flops      = 16 flops per instruction
//   avx512-bf16  vdpbf16ps zmm    16 fp32 lanes x 2 bf16 pairs
//                                 x (multiply + add)           = 64 flops per instruction
//
// Each loop keeps enough accumulators in flight (16 for zmm, 12 for ymm) to cover the latency of
// two FMA pipes. The CPU's features are checked at run time (cpuid, with the OS's support for the
// registers); a loop the CPU cannot run is reported as unavailable, with the reason.

#include <optional>
#include <string>
#include <vector>

namespace attnc::bench {

struct FmaLoop {
  std::string name;         // "avx512-fp32", "avx2-fp32", "avx512-bf16"
  std::string instruction;  // "vfmadd231ps zmm", ...
  std::string dtype;        // the inputs' type: "fp32" or "bf16"
  int flops_per_instruction = 0;
  bool available = false;
  std::string unavailable_reason;  // when not available
  double gflops = 0;               // all threads together, the best of a few runs
};

struct FmaPeaks {
  int threads = 0;
  std::vector<FmaLoop> loops;  // every loop, available or not, in the order above

  // The best GFLOP/s of the available loops of `dtype`, or nullopt when none ran.
  std::optional<double> peak(const std::string& dtype) const;
};

// Runs every available loop on `threads` threads at once (about 0.1 s each).
FmaPeaks measure_fma_peaks(int threads);

}  // namespace attnc::bench
