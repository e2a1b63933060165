// Timing of the CPU backward kernel against the CPU forward kernel (hidden: run it by name,
// `test_runtime "[.backward_timing]"`). Both run the whole call, mods and all, on fresh inputs of
// the same shape; the medians of five runs after a warm-up are printed. The machines this runs on
// are shared, so the figures are indicative.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Mods.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/families/flash_backward/FlashBackwardCpu.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

namespace {

template <typename F>
double median_seconds(F&& f, int runs) {
  f();  // warm-up: JIT compilation, page faults
  std::vector<double> seconds;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

TEST_CASE("backward against forward time on the CPU, causal, fp32, D = 128", "[.backward_timing]") {
  const char* env = std::getenv("ATTNC_BACKWARD_TIMING_SEQ");
  const int64_t S = env ? std::atoll(env) : 1024;
  const int64_t B = 1, H = 8, D = 128;
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  const Tensor q = normal_tensor(1, DType::F32, {B, H, S, D}), k = normal_tensor(2, DType::F32, {B, H, S, D});
  const Tensor v = normal_tensor(3, DType::F32, {B, H, S, D}), dout = normal_tensor(4, DType::F32, {B, H, S, D});
  Tensor out = Tensor::empty(DType::F32, {B, H, S, D});
  Tensor lse = Tensor::empty(DType::F32, {B, H, S});
  const double forward = median_seconds([&] { flash_attention(q, k, v, out, options, &lse); }, 5);
  AttentionGradients grads;
  const double backward = median_seconds([&] { flash_attention_backward(q, k, v, out, lse, dout, grads, options); }, 5);
  WARN("B=1 H=8 S=" << S << " D=128 causal fp32: forward " << forward * 1e3 << " ms, backward " << backward * 1e3
                    << " ms, ratio " << backward / forward);
  CHECK(backward > 0);
}
