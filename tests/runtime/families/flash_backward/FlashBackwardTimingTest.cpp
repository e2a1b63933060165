// Timing of the CPU backward kernel against the CPU forward kernel (hidden: run it by name,
// `test_runtime "[.backward_timing]"`, ATTNC_BACKWARD_TIMING_SEQ for S, ATTNC_BACKWARD_TIMING_RUNS for
// the number of pairs, ATTNC_BACKWARD_TIMING_DROPOUT for a dropout rate in both passes). Both run the whole call, mods and all, on the same inputs. Forward and
// backward runs alternate after a warm-up of each, and the ratio printed is the median of the pairs'
// ratios: the shared build machine's speed drifts within a run, and a pair sees the same conditions.

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
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
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
  const char* runs_env = std::getenv("ATTNC_BACKWARD_TIMING_RUNS");
  const int runs = runs_env ? std::max(1, std::atoi(runs_env)) : 5;
  const char* dropout_env = std::getenv("ATTNC_BACKWARD_TIMING_DROPOUT");
  Dropout dropout;
  if (dropout_env) dropout = Dropout{static_cast<float>(std::atof(dropout_env)), 42};
  FlashOptions flash;
  flash.dropout = dropout;
  AttentionGradients grads;
  auto forward_call = [&] { flash_attention(q, k, v, out, options, flash, &lse); };
  auto backward_call = [&] { flash_attention_backward(q, k, v, out, lse, dout, grads, options, dropout); };
  forward_call();  // warm-ups: JIT compilation, page faults
  backward_call();
  std::vector<double> forward, backward, ratios;
  for (int r = 0; r < runs; ++r) {
    forward.push_back(seconds_of(forward_call));
    backward.push_back(seconds_of(backward_call));
    ratios.push_back(backward.back() / forward.back());
  }
  WARN("B=1 H=8 S=" << S << " D=128 causal fp32, dropout " << dropout.rate << ", " << runs << " pairs: forward median " << median(forward) * 1e3
                    << " ms, backward median " << median(backward) * 1e3 << " ms, ratio (median of pairs) "
                    << median(ratios) << ", min " << *std::min_element(ratios.begin(), ratios.end()) << ", max "
                    << *std::max_element(ratios.begin(), ratios.end()));
  CHECK(median(backward) > 0);
}
