#include "bench/suite/BenchSuite.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>

#include "bench/suite/KeptPairs.h"
#include "runtime/core/Npy.h"
#include "runtime/reference/ReferenceAttention.h"

using namespace attnc;
using namespace attnc::bench;
namespace fs = std::filesystem;

namespace {

BenchConfig small_suite() {
  BenchConfig c;
  c.seqs = {200};
  c.head_dims = {16};
  c.dtypes = {DType::F32, DType::BF16};
  c.heads = 2;
  c.repeat = 2;
  c.threads = 2;
  c.references = false;
  return c;
}

}  // namespace

TEST_CASE("the suite runs every case for real and reports each as it finishes", "[bench][suite]") {
  BenchConfig c = small_suite();
  int shapes = 0;
  std::vector<std::string> finished;
  BenchObserver observer;
  observer.peaks_measured = [](const FmaPeaks&) { FAIL("no references were asked for"); };
  observer.shape_started = [&](int seq, int head_dim, const Ceiling& ceiling) {
    ++shapes;
    CHECK(seq == 200);
    CHECK(head_dim == 16);
    CHECK_FALSE(ceiling.measured);
  };
  observer.case_finished = [&](const CaseResult& r) { finished.push_back(r.id); };
  BenchReport report = run_bench_suite(c, observer);
  CHECK(shapes == 1);
  REQUIRE(report.cases.size() == 12);
  CHECK(finished.size() == 12);
  CHECK_FALSE(report.failed());
  CHECK(report.threads == 2);
  CHECK_FALSE(report.peaks.has_value());
  for (const CaseResult& r : report.cases) {
    CAPTURE(r.id, r.error);
    CHECK(r.error.empty());
    CHECK(r.times_ms.size() == 2);
    CHECK(r.median_ms > 0);
    CHECK(r.checksum > 0);
    CHECK(r.gflops == Approx(r.flops / r.median_ms * 1e-6));
    CHECK(r.flops == 4.0 * 16 * double(r.kept));
    CHECK(r.vs_none.has_value());  // "none" runs first in each dtype
    CHECK_FALSE(r.ceiling_ratio.has_value());
    CHECK_FALSE(r.fp32_peak_ratio.has_value());
  }
  CHECK(report.cases[0].id == "none-fp32-S200-D16");
  CHECK(report.cases[6].id == "none-bf16-S200-D16");
  CHECK(*report.cases[0].vs_none == 1.0);
}

TEST_CASE("the suite dumps inputs and outputs that reproduce its cases", "[bench][suite]") {
  static std::atomic<int> counter{0};
  fs::path dump = fs::temp_directory_path() /
                  ("attnc-bench-suite-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  BenchConfig c = small_suite();
  c.dtypes = {DType::F32};
  c.mods = {BenchMod::Causal, BenchMod::Document};
  c.dump = dump.string();
  BenchReport report = run_bench_suite(c);
  REQUIRE(report.cases.size() == 2);
  fs::path dir = dump / "fp32-S200-D16";
  Tensor q = read_npy((dir / "q.npy").string()), k = read_npy((dir / "k.npy").string()),
         v = read_npy((dir / "v.npy").string());
  CHECK(fs::exists(dir / "document_ids.npy"));
  CaseMods causal = make_mods(BenchMod::Causal, 1, 2, 200);
  AttentionOptions options;
  options.mask_mod = &*causal.mask;
  std::vector<float> want = standard_attention(q, k, v, options).to_float_vector();
  REQUIRE(report.cases[0].output_path == (dir / "out-causal.npy").string());
  std::vector<float> got = read_npy(report.cases[0].output_path).to_float_vector();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::fabs(got[i] - want[i]) < 1e-4f);
  CHECK_FALSE(report.cases[0].vs_none.has_value());  // no "none" case ran
  fs::remove_all(dump);
}

TEST_CASE("each case is set against the ceiling of its shape and the FMA peaks", "[bench][suite]") {
  BenchConfig c = small_suite();
  c.mods = {BenchMod::None};
  c.references = true;
  c.repeat = 1;
  std::optional<FmaPeaks> seen;
  BenchObserver observer;
  observer.peaks_measured = [&](const FmaPeaks& peaks) { seen = peaks; };
  BenchReport report = run_bench_suite(c, observer);
  REQUIRE(seen.has_value());
  REQUIRE(report.cases.size() == 2);
  const Ceiling& ceiling = report.ceilings.at({200, 16});
  for (const CaseResult& r : report.cases) {
    CAPTURE(r.id);
    CHECK(r.ceiling_ratio.has_value() == ceiling.measured);
    if (ceiling.measured) CHECK(*r.ceiling_ratio == Approx(r.gflops / ceiling.gflops));
    CHECK(r.fp32_peak_ratio.has_value() == seen->peak("fp32").has_value());
    if (r.fp32_peak_ratio) CHECK(*r.fp32_peak_ratio == Approx(r.gflops / *seen->peak("fp32")));
    // Only bf16 inputs are also set against the bf16 dot-product peak.
    CHECK(r.bf16_peak_ratio.has_value() == (r.dtype == DType::BF16 && seen->peak("bf16").has_value()));
  }
}
