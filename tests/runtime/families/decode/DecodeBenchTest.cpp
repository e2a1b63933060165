// The CPU decode benchmark helpers (runtime/families/decode/DecodeBench.h) run on small sizes: they
// return consistent numbers for contiguous, paged and windowed decode. Nothing about speed is
// asserted (the build machine is shared); the lead measures at the sizes.

#include "runtime/families/decode/DecodeBench.h"

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
  config.repeats = 2;
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
      CHECK(r.fraction == Approx(r.decode_gbps / r.read_gbps));
      CHECK(r.num_splits >= 1);
      CHECK(r.threads >= 1);
      CHECK(std::string(r.kernels).size() > 0);
    }
  }
  config.kv_len = 0;
  CHECK_THROWS_AS(benchmark_decode_cpu(config), attnc::RuntimeError);
}
