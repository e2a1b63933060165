#include "bench/suite/BenchJson.h"

#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "runtime/cpu/CpuModProgram.h"

namespace attnc::bench {

using nlohmann::json;

namespace {

json optional_number(const std::optional<double>& x) { return x && std::isfinite(*x) ? json(*x) : json(nullptr); }

json fma_peaks_json(const FmaPeaks& peaks) {
  json loops = json::array();
  for (const FmaLoop& loop : peaks.loops) {
    loops.push_back({{"loop", loop.name},
                     {"instruction", loop.instruction},
                     {"dtype", loop.dtype},
                     {"flops_per_instruction", loop.flops_per_instruction},
                     {"available", loop.available},
                     {"gflops", loop.available ? json(loop.gflops) : json(nullptr)},
                     {"unavailable_reason", loop.unavailable_reason}});
  }
  return {{"threads", peaks.threads},
          {"fp32_gflops", optional_number(peaks.peak("fp32"))},
          {"bf16_gflops", optional_number(peaks.peak("bf16"))},
          {"loops", loops}};
}

}  // namespace

std::string bench_json(const BenchConfig& c, const BenchReport& report) {
  json j;
  j["tool"] = "attnc bench";
  j["threads"] = report.threads;
  j["batch"] = c.batch;
  j["heads"] = c.heads;
  j["repeat"] = c.repeat;
  j["jit"] = cpu_jit_available() ? "llvm" : "interpreter";
  j["blas"] = blas_config();
  // Where the ceiling was measured, and what the environment of attnc itself asked OpenBLAS for
  // (the child measured without it; bench/suite/Ceiling.h).
  j["ceiling_process"] = c.ceiling_command.empty() ? "this process" : "a child process without the BLAS overrides";
  json overrides = json::object();
  for (const char* name : kBlasOverrides) {
    if (const char* value = std::getenv(name)) overrides[name] = value;
  }
  j["blas_overrides_in_environment"] = overrides;
  j["window"] = kWindow;
  j["documents"] = kDocuments;
  j["softcap"] = kSoftcap;
  j["dump"] = c.dump;
  j["fma_peaks"] = report.peaks ? fma_peaks_json(*report.peaks) : json(nullptr);
  json ceilings = json::array();
  for (const auto& [shape, ceiling] : report.ceilings) {
    if (!ceiling.measured) continue;
    ceilings.push_back({{"seq", shape.first},
                        {"head_dim", shape.second},
                        {"core", ceiling.core},
                        {"qk_ms", ceiling.qk_ms},
                        {"qk_gflops", ceiling.qk_gflops},
                        {"pv_ms", ceiling.pv_ms},
                        {"pv_gflops", ceiling.pv_gflops},
                        {"gflops", ceiling.gflops}});
  }
  j["ceilings"] = ceilings;
  json cases = json::array();
  for (const CaseResult& r : report.cases) {
    cases.push_back({{"id", r.id},
                     {"mod", mod_name(r.mod)},
                     {"dtype", dtype_name(r.dtype)},
                     {"seq", r.seq},
                     {"head_dim", r.head_dim},
                     {"kept_pairs", r.kept},
                     {"total_pairs", r.total},
                     {"flops", r.flops},
                     {"first_ms", r.first_ms},
                     {"median_ms", r.median_ms},
                     {"min_ms", r.min_ms},
                     {"times_ms", r.times_ms},
                     {"gflops", r.gflops},
                     {"ceiling_ratio", optional_number(r.ceiling_ratio)},
                     {"fp32_peak_ratio", optional_number(r.fp32_peak_ratio)},
                     {"bf16_peak_ratio", optional_number(r.bf16_peak_ratio)},
                     {"vs_none", optional_number(r.vs_none)},
                     {"tiles_skipped", r.stats.tiles_skipped},
                     {"tiles_full", r.stats.tiles_full},
                     {"tiles_partial", r.stats.tiles_partial},
                     {"mod_backend", r.backend},
                     {"checksum", r.checksum},
                     {"output", r.output_path},
                     {"error", r.error}});
  }
  j["cases"] = cases;
  // nlohmann writes non-finite numbers as null, which is what JSON readers expect.
  return j.dump(2) + "\n";
}

}  // namespace attnc::bench
