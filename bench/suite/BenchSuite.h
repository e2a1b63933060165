#pragma once
// The benchmark suite behind `attnc bench`: cases of shape x dtype x mod timed on the CPU flash
// kernel (runtime/families/flash/FlashCpu.h), each set against two references measured in the
// same run: the sgemm ceiling of its shape (bench/suite/Ceiling.h) and the FMA peak of the cores
// (bench/suite/FmaPeak.h). GFLOP/s count only the work the mask keeps (bench/suite/KeptPairs.h).
//
// The runner never prints: it reports each measurement to an observer as it happens, and returns
// everything for the JSON report (bench/suite/BenchJson.h).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/suite/BenchMods.h"
#include "bench/suite/Ceiling.h"
#include "bench/suite/FmaPeak.h"
#include "runtime/families/flash/FlashCpu.h"

namespace attnc::bench {

struct BenchConfig {
  std::vector<int> seqs = {1024, 4096, 16384};
  std::vector<int> head_dims = {64, 128};
  std::vector<DType> dtypes = {DType::F32, DType::BF16};
  std::vector<BenchMod> mods = {std::begin(kAllMods), std::end(kAllMods)};
  int repeat = 3;
  int threads = 0;  // <= 0: one per hardware thread
  int batch = 1;
  int heads = 8;
  std::string dump;  // when set: write inputs and outputs under this directory
  // Measure the sgemm ceiling and the FMA peaks.
  bool references = true;
  // How to start the process that measures the ceiling (Ceiling.h); empty: measure it in this
  // process, with whatever kernel OpenBLAS chose when it was loaded.
  std::vector<std::string> ceiling_command;
};

// The worker threads a config runs with.
int effective_threads(const BenchConfig& config);

struct CaseResult {
  std::string id;  // "<mod>-<dtype>-S<S>-D<D>"
  BenchMod mod = BenchMod::None;
  DType dtype = DType::F32;
  int seq = 0, head_dim = 0;
  int64_t kept = 0, total = 0;  // (b, h, q, kv) kept by the mask, and all of them
  double flops = 0;             // 4 * D * kept
  double first_ms = 0, median_ms = 0, min_ms = 0;
  std::vector<double> times_ms;
  double gflops = 0;
  FlashStats stats;
  std::string backend;  // how the mods ran: "llvm", "interpreter" or "-" (no mod)
  double checksum = 0;  // sum of |out|, so the work cannot be skipped unseen
  std::string output_path;
  std::optional<double> vs_none;          // median time over the same shape's case without a mod
  std::optional<double> ceiling_ratio;    // gflops over the sgemm ceiling of the shape
  std::optional<double> fp32_peak_ratio;  // gflops over the fp32 FMA peak
  std::optional<double> bf16_peak_ratio;  // bf16 cases: gflops over the bf16 dot-product peak
  std::string error;
};

struct BenchReport {
  int threads = 0;
  std::optional<FmaPeaks> peaks;
  std::map<std::pair<int, int>, Ceiling> ceilings;  // by (S, D), measured or not
  std::vector<CaseResult> cases;
  bool failed() const;  // any case with an error
};

struct BenchObserver {
  std::function<void(const FmaPeaks&)> peaks_measured;
  // Before the cases of one (S, D); the ceiling is unmeasured (with a reason) when it was not
  // measured or could not be.
  std::function<void(int seq, int head_dim, const Ceiling&)> shape_started;
  std::function<void(const CaseResult&)> case_finished;
};

// Runs the suite: the FMA peaks first, then per (S, D) the ceiling and the cases, per dtype one
// set of inputs with the timed runs of its mods interleaved (run 1 of every mod, then run 2, ...)
// so that a change of load on a shared machine weighs on every mod alike. A case that fails (an
// error, or a non-finite output) carries the error and the others go on; a disagreement between
// counted and closed-form kept pairs is an InternalError. RuntimeError when the dump directory
// cannot be written.
BenchReport run_bench_suite(const BenchConfig& config, const BenchObserver& observer = {});

}  // namespace attnc::bench
