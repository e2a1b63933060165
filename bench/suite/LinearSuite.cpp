#include "bench/suite/LinearSuite.h"

#include <exception>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attnc::bench {

using nlohmann::json;

bool LinearSuiteReport::failed() const {
  for (const LinearCase& c : cases) {
    if (!c.error.empty()) return true;
  }
  return false;
}

LinearSuiteReport run_linear_suite(const LinearSuiteConfig& config,
                                   const std::function<void(const LinearCase&)>& finished) {
  LinearSuiteReport report;
  for (DType dtype : config.dtypes) {
    for (bool causal : config.causal) {
      LinearCase c;
      c.dtype = dtype;
      c.causal = causal;
      c.id = fmt::format("{}-{}", dtype_name(dtype), causal ? "causal" : "noncausal");
      LinearBenchmarkConfig bench;
      bench.batch = config.batch;
      bench.heads = config.heads;
      bench.length = config.length;
      bench.head_dim = config.head_dim;
      bench.dtype = dtype;
      bench.causal = causal;
      bench.chunk_size = config.chunk_size;
      bench.repeats = config.repeat;
      bench.num_threads = config.threads;
      try {
        c.result = benchmark_linear_attention(bench);
      } catch (const std::exception& e) {
        c.error = e.what();
      }
      report.cases.push_back(c);
      if (finished) finished(report.cases.back());
    }
  }
  return report;
}

std::string linear_suite_json(const LinearSuiteConfig& config, const LinearSuiteReport& report) {
  json j;
  j["tool"] = "attnc bench --linear";
  j["batch"] = config.batch;
  j["heads"] = config.heads;
  j["length"] = config.length;
  j["head_dim"] = config.head_dim;
  j["chunk_size"] = config.chunk_size;
  j["repeat"] = config.repeat;
  j["ceiling"] = "fp32 gemm micro-kernel of the CPU backend, phi(Q) [S x D] x [D x (D + 1)] per (b, h)";
  json cases = json::array();
  for (const LinearCase& c : report.cases) {
    const LinearBenchmarkResult& r = c.result;
    json entry = {{"id", c.id}, {"dtype", dtype_name(c.dtype)}, {"causal", c.causal}, {"error", c.error}};
    if (c.error.empty()) {
      entry["median_ms"] = 1e3 * r.seconds;
      entry["flops"] = r.flops;
      entry["gflops"] = r.gflops;
      entry["sgemm_gflops"] = r.sgemm_gflops;
      entry["ratio"] = r.fraction;
    }
    cases.push_back(entry);
  }
  j["cases"] = cases;
  return j.dump(2) + "\n";
}

}  // namespace attnc::bench
