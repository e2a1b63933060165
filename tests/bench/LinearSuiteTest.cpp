// The linear attention suite behind `attnc bench --linear` (bench/suite/LinearSuite.h), at tiny
// shapes: cases in order (dtypes x variants), GFLOP/s and the ratio derived from the measured time,
// flops and ceiling, and the JSON holding exactly those numbers. No timing value is checked.

#include "bench/suite/LinearSuite.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

using namespace attnc;
using namespace attnc::bench;

TEST_CASE("the linear suite measures each dtype and variant against the same-run sgemm ceiling", "[bench][linear]") {
  LinearSuiteConfig config;
  config.batch = 1;
  config.heads = 2;
  config.length = 100;  // not a multiple of the chunk
  config.head_dim = 16;
  config.chunk_size = 32;
  config.dtypes = {DType::F32, DType::BF16};
  config.causal = {true, false};
  config.repeat = 1;
  config.threads = 2;
  std::vector<std::string> seen;
  const LinearSuiteReport report = run_linear_suite(config, [&](const LinearCase& c) { seen.push_back(c.id); });
  CHECK(seen == std::vector<std::string>{"fp32-causal", "fp32-noncausal", "bf16-causal", "bf16-noncausal"});
  REQUIRE(report.cases.size() == 4);
  CHECK_FALSE(report.failed());
  int64_t causal_flops = 0, noncausal_flops = 0;
  for (const LinearCase& c : report.cases) {
    CAPTURE(c.id, c.error);
    REQUIRE(c.error.empty());
    const LinearBenchmarkResult& r = c.result;
    REQUIRE(r.seconds > 0);
    REQUIRE(r.flops > 0);
    CHECK(r.gflops == Approx(double(r.flops) / r.seconds / 1e9));
    REQUIRE(r.sgemm_gflops > 0);
    CHECK(r.fraction == Approx(r.gflops / r.sgemm_gflops));
    (c.causal ? causal_flops : noncausal_flops) = r.flops;
  }
  // The causal form adds the intra-chunk products to the same state updates.
  CHECK(causal_flops > noncausal_flops);

  const nlohmann::json json = nlohmann::json::parse(linear_suite_json(config, report));
  CHECK(json["tool"] == "attnc bench --linear");
  CHECK(json["length"] == 100);
  REQUIRE(json["cases"].size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json& j = json["cases"][i];
    const LinearCase& c = report.cases[i];
    CAPTURE(c.id);
    CHECK(j["id"] == c.id);
    CHECK(j["causal"] == c.causal);
    CHECK(j["flops"] == c.result.flops);
    CHECK(j["median_ms"].get<double>() == Approx(1e3 * c.result.seconds));
    CHECK(j["gflops"].get<double>() == Approx(c.result.gflops));
    CHECK(j["sgemm_gflops"].get<double>() == Approx(c.result.sgemm_gflops));
    CHECK(j["ratio"].get<double>() == Approx(j["gflops"].get<double>() / j["sgemm_gflops"].get<double>()));
  }
}
