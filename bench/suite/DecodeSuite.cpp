#include "bench/suite/DecodeSuite.h"

#include <exception>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attnc::bench {

using nlohmann::json;

bool DecodeSuiteReport::failed() const {
  for (const DecodeCase& c : cases) {
    if (!c.error.empty()) return true;
  }
  return false;
}

DecodeSuiteReport run_decode_suite(const DecodeSuiteConfig& config,
                                   const std::function<void(const DecodeCase&)>& finished) {
  DecodeSuiteReport report;
  for (DType dtype : config.dtypes) {
    for (int page_size : config.page_sizes) {
      DecodeCase c;
      c.dtype = dtype;
      c.page_size = page_size;
      c.id = fmt::format("{}-{}", dtype_name(dtype), page_size == 0 ? "contiguous" : fmt::format("paged{}", page_size));
      decode::DecodeBenchConfig bench;
      bench.batch = config.batch;
      bench.heads = config.heads;
      bench.kv_heads = config.kv_heads;
      bench.q_len = config.q_len;
      bench.kv_len = config.kv_len;
      bench.head_dim = config.head_dim;
      bench.dtype = dtype;
      bench.page_size = page_size;
      bench.window = config.window;
      bench.repeats = config.repeat;
      bench.num_threads = config.threads;
      try {
        c.result = decode::benchmark_decode_cpu(bench);
      } catch (const std::exception& e) {
        c.error = e.what();
      }
      report.cases.push_back(c);
      if (finished) finished(report.cases.back());
    }
  }
  return report;
}

std::string decode_suite_json(const DecodeSuiteConfig& config, const DecodeSuiteReport& report) {
  json j;
  j["tool"] = "attnc bench --decode";
  j["batch"] = config.batch;
  j["heads"] = config.heads;
  j["kv_heads"] = config.kv_heads;
  j["q_len"] = config.q_len;
  j["kv_len"] = config.kv_len;
  j["head_dim"] = config.head_dim;
  j["window"] = config.window;
  j["repeat"] = config.repeat;
  json cases = json::array();
  for (const DecodeCase& c : report.cases) {
    const decode::DecodeBenchResult& r = c.result;
    const bool ok = c.error.empty();
    json entry = {{"id", c.id},
                  {"dtype", dtype_name(c.dtype)},
                  {"layout", c.page_size == 0 ? "contiguous" : "paged"},
                  {"page_size", c.page_size},
                  {"error", c.error}};
    if (ok) {
      entry["decode_ms"] = 1e3 * r.decode_seconds;
      entry["kv_bytes"] = r.kv_bytes;
      entry["read_bytes"] = r.read_bytes;
      entry["decode_gbps"] = r.decode_gbps;
      entry["ceiling_ms"] = 1e3 * r.read_seconds;
      entry["ceiling_gbps"] = r.read_gbps;
      entry["ratio"] = r.fraction;
      json decode_ms = json::array(), ceiling_ms = json::array();
      for (double t : r.decode_times) decode_ms.push_back(1e3 * t);
      for (double t : r.read_times) ceiling_ms.push_back(1e3 * t);
      entry["pairs_decode_ms"] = decode_ms;  // every alternating pair, in the order run
      entry["pairs_ceiling_ms"] = ceiling_ms;
      entry["num_splits"] = r.num_splits;
      entry["threads"] = r.threads;
      entry["kernels"] = r.kernels;
    }
    cases.push_back(entry);
  }
  j["cases"] = cases;
  return j.dump(2) + "\n";
}

}  // namespace attnc::bench
