// The CPU decode benchmark helpers (runtime/families/decode/DecodeBench.h) run on small sizes: they
// return consistent numbers for contiguous, paged and windowed decode. Nothing about speed is
// asserted (the build machine is shared); the lead measures at the sizes.

#include "runtime/families/decode/DecodeBench.h"

#include <algorithm>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"

using namespace attnc::decode;

TEST_CASE("the decode benchmark returns its time, its bandwidth and the same-run ceiling", "[runtime][decode][cpu]") {
  DecodeBenchConfig config;
  config.batch = 2;
  config.heads = 8;
  config.kv_heads = 2;
  config.kv_len = 2000;
  config.head_dim = 64;
  config.repeats = 3;
  for (int page : {0, 16}) {
    for (int window : {0, 256}) {
      CAPTURE(page, window);
      config.page_size = page;
      config.window = window;
      const DecodeBenchResult r = benchmark_decode_cpu(config);
      CHECK(r.decode_seconds > 0);
      CHECK(r.read_seconds > 0);
      CHECK(r.kv_bytes == 2.0 * 2 * 2 * 2000 * 64 * 2);
      CHECK(r.read_bytes == (window == 0 ? r.kv_bytes : 2.0 * 2 * 2 * 256 * 64 * 2));
      CHECK(r.decode_gbps == Approx(r.read_bytes / r.decode_seconds / 1e9));
      // Decode and ceiling runs alternate; the fraction is the median of the pairs' ratios.
      REQUIRE(r.decode_times.size() == 3);
      REQUIRE(r.read_times.size() == 3);
      std::vector<double> ratios;
      for (size_t i = 0; i < 3; ++i) {
        ratios.push_back((r.read_bytes / r.decode_times[i]) / (r.kv_bytes / r.read_times[i]));
      }
      std::sort(ratios.begin(), ratios.end());
      CHECK(r.fraction == Approx(ratios[1]));
      std::vector<double> decode_sorted = r.decode_times;
      std::sort(decode_sorted.begin(), decode_sorted.end());
      CHECK(r.decode_seconds == decode_sorted[1]);
      CHECK(r.num_splits >= 1);
      CHECK(r.threads >= 1);
      CHECK(std::string(r.kernels).size() > 0);
    }
  }
  config.kv_len = 0;
  CHECK_THROWS_AS(benchmark_decode_cpu(config), attnc::RuntimeError);
}
