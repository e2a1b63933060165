// The decode suite behind `attnc bench --decode` (bench/suite/DecodeSuite.h), at tiny shapes: the
// cases run in order (dtypes x layouts), the bytes are those of the shape, every rate and the ratio
// are computed from the measured times and bytes, and the JSON holds exactly the measured numbers.
// No timing value is checked: a loaded machine may give any.

#include "bench/suite/DecodeSuite.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

using namespace attnc;
using namespace attnc::bench;

TEST_CASE("the decode suite measures each dtype and layout and derives its rates from the measurements",
          "[bench][decode]") {
  DecodeSuiteConfig config;
  config.batch = 2;
  config.heads = 4;
  config.kv_heads = 2;
  config.kv_len = 300;  // ends mid-page
  config.head_dim = 16;
  config.dtypes = {DType::BF16, DType::F32};
  config.page_sizes = {0, 16};
  config.repeat = 1;
  config.threads = 2;
  std::vector<std::string> seen;
  const DecodeSuiteReport report = run_decode_suite(config, [&](const DecodeCase& c) { seen.push_back(c.id); });
  CHECK(seen == std::vector<std::string>{"bf16-contiguous", "bf16-paged16", "fp32-contiguous", "fp32-paged16"});
  REQUIRE(report.cases.size() == 4);
  CHECK_FALSE(report.failed());
  for (const DecodeCase& c : report.cases) {
    CAPTURE(c.id, c.error);
    REQUIRE(c.error.empty());
    const decode::DecodeBenchResult& r = c.result;
    const double element = c.dtype == DType::F32 ? 4 : 2;
    CHECK(r.kv_bytes == 2.0 * 2 * 2 * 300 * 16 * element);
    CHECK(r.read_bytes == r.kv_bytes);  // no window: every key is read
    REQUIRE(r.decode_seconds > 0);
    REQUIRE(r.read_seconds > 0);
    CHECK(r.decode_gbps == Approx(r.read_bytes / r.decode_seconds / 1e9));
    CHECK(r.read_gbps == Approx(r.kv_bytes / r.read_seconds / 1e9));
    CHECK(r.fraction == Approx(r.decode_gbps / r.read_gbps));
    CHECK(r.threads >= 1);
  }

  const nlohmann::json json = nlohmann::json::parse(decode_suite_json(config, report));
  CHECK(json["tool"] == "attnc bench --decode");
  CHECK(json["kv_len"] == 300);
  CHECK(json["kv_heads"] == 2);
  REQUIRE(json["cases"].size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json& j = json["cases"][i];
    const DecodeCase& c = report.cases[i];
    CAPTURE(c.id);
    CHECK(j["id"] == c.id);
    CHECK(j["layout"] == (c.page_size == 0 ? "contiguous" : "paged"));
    CHECK(j["page_size"] == c.page_size);
    CHECK(j["decode_ms"].get<double>() == Approx(1e3 * c.result.decode_seconds));
    CHECK(j["ceiling_ms"].get<double>() == Approx(1e3 * c.result.read_seconds));
    CHECK(j["decode_gbps"].get<double>() == Approx(c.result.decode_gbps));
    CHECK(j["ceiling_gbps"].get<double>() == Approx(c.result.read_gbps));
    CHECK(j["ratio"].get<double>() == Approx(j["decode_gbps"].get<double>() / j["ceiling_gbps"].get<double>()));
    CHECK(j["error"] == "");
  }
}

TEST_CASE("a decode window counts only the keys it reads", "[bench][decode]") {
  DecodeSuiteConfig config;
  config.batch = 1;
  config.heads = 2;
  config.kv_heads = 1;
  config.kv_len = 1000;
  config.head_dim = 16;
  config.window = 100;
  config.dtypes = {DType::F32};
  config.page_sizes = {0};
  config.repeat = 1;
  const DecodeSuiteReport report = run_decode_suite(config);
  REQUIRE(report.cases.size() == 1);
  REQUIRE(report.cases[0].error.empty());
  const decode::DecodeBenchResult& r = report.cases[0].result;
  CHECK(r.kv_bytes == 2.0 * 1000 * 16 * 4);
  CHECK(r.read_bytes == 2.0 * 100 * 16 * 4);  // one query row: the window's 100 keys
  CHECK(r.fraction == Approx(r.decode_gbps / r.read_gbps));
}

TEST_CASE("a decode case that fails carries its error and the suite goes on", "[bench][decode]") {
  DecodeSuiteConfig config;
  config.batch = 1;
  config.heads = 3;  // not a multiple of the KV heads: the decode kernel refuses it
  config.kv_heads = 2;
  config.kv_len = 64;
  config.head_dim = 16;
  config.dtypes = {DType::F32, DType::BF16};
  config.page_sizes = {0};
  config.repeat = 1;
  const DecodeSuiteReport report = run_decode_suite(config);
  REQUIRE(report.cases.size() == 2);
  CHECK(report.failed());
  for (const DecodeCase& c : report.cases) CHECK_FALSE(c.error.empty());
  const nlohmann::json json = nlohmann::json::parse(decode_suite_json(config, report));
  CHECK_FALSE(json["cases"][0].contains("ratio"));
  CHECK(json["cases"][0]["error"] != "");
}
