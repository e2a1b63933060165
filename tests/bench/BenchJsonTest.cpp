#include "bench/suite/BenchJson.h"

#include <catch2/catch.hpp>

#include <cmath>

#include <nlohmann/json.hpp>

using namespace attnc;
using namespace attnc::bench;
using nlohmann::json;

TEST_CASE("the JSON report holds the settings, references and every case, with null for what is missing",
          "[bench][json]") {
  BenchConfig config;
  config.heads = 4;
  config.ceiling_command = {"/proc/self/exe", "__sgemm-ceiling"};
  BenchReport report;
  report.threads = 2;
  FmaPeaks peaks;
  peaks.threads = 2;
  FmaLoop fp32;
  fp32.name = "avx512-fp32";
  fp32.dtype = "fp32";
  fp32.available = true;
  fp32.gflops = 200;
  FmaLoop bf16;
  bf16.name = "avx512-bf16";
  bf16.dtype = "bf16";
  bf16.unavailable_reason = "this CPU lacks AVX512-BF16";
  peaks.loops = {fp32, bf16};
  report.peaks = peaks;
  Ceiling ceiling;
  ceiling.measured = true;
  ceiling.core = "SkylakeX";
  ceiling.gflops = 100;
  report.ceilings[{1024, 64}] = ceiling;
  report.ceilings[{2048, 64}] = Ceiling{};  // not measured: left out
  CaseResult r;
  r.id = "causal-bf16-S1024-D64";
  r.mod = BenchMod::Causal;
  r.dtype = DType::BF16;
  r.seq = 1024;
  r.head_dim = 64;
  r.gflops = 50;
  r.ceiling_ratio = 0.5;
  r.fp32_peak_ratio = 0.25;
  r.vs_none = NAN;
  r.times_ms = {1.0, 2.0};
  report.cases = {r};

  json j = json::parse(bench_json(config, report));
  CHECK(j["tool"] == "attnc bench");
  CHECK(j["heads"] == 4);
  CHECK(j["threads"] == 2);
  CHECK(j["ceiling_process"] == "a child process without the BLAS overrides");
  CHECK(j["blas_overrides_in_environment"].is_object());
  CHECK(j["fma_peaks"]["fp32_gflops"] == 200.0);
  CHECK(j["fma_peaks"]["bf16_gflops"].is_null());
  CHECK(j["fma_peaks"]["loops"][1]["available"] == false);
  CHECK(j["fma_peaks"]["loops"][1]["gflops"].is_null());
  CHECK(j["fma_peaks"]["loops"][1]["unavailable_reason"] == "this CPU lacks AVX512-BF16");
  REQUIRE(j["ceilings"].size() == 1);
  CHECK(j["ceilings"][0]["core"] == "SkylakeX");
  REQUIRE(j["cases"].size() == 1);
  const json& c = j["cases"][0];
  CHECK(c["id"] == "causal-bf16-S1024-D64");
  CHECK(c["mod"] == "causal");
  CHECK(c["dtype"] == "bf16");
  CHECK(c["ceiling_ratio"] == 0.5);
  CHECK(c["fp32_peak_ratio"] == 0.25);
  CHECK(c["bf16_peak_ratio"].is_null());
  CHECK(c["vs_none"].is_null());  // not finite
  CHECK(c["times_ms"] == json({1.0, 2.0}));
}
