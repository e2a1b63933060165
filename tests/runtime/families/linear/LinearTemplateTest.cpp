// The CUDA linear attention template (runtime/families/linear/linear_attention.cuh) run on the CPU
// under the host emulation, with the launcher's own argument packing (linear_params), against the
// fp64 formulas (linear_attention_reference): every element type, causal and non-causal, odd
// lengths, q_len != kv_len, GQA, key masks (one batch masking every key), value dims split over
// several CTAs, and chunks of 16 and 32.

#include "runtime/families/linear/linear_attention.cuh"

#include <catch2/catch.hpp>

#include <vector>

#include "runtime/core/AttentionChecks.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/linear/LinearCuda.h"
#include "runtime/reference/LinearReference.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

// Tolerances: the template sums in fp32 with ex2.approx for phi (emulated exactly); the reference
// in fp64. fp32 outputs within kTolF32 as ||out - ref|| / ||ref||; fp16 / bf16 outputs (the
// template writes its input dtype) within their rounding after the same inputs.
namespace {

constexpr double kTolF32 = 1e-5;
constexpr double kTolF16 = 1.0 / 1024;
constexpr double kTolBF16 = 1.0 / 128;

template <class Elem, int D, int DV, int DV_TILE, int CHUNK, bool CAUSAL>
Tensor emulate(const Tensor& q, const Tensor& k, const Tensor& v, const LinearAttentionOptions& options) {
  using Kernel = attnc_linear::LinearForward<Elem, D, DV, DV_TILE, CHUNK, 64, CAUSAL>;
  Tensor out = Tensor::empty(q.dtype(), attention_out_shape(q, v));
  const AttentionShape shape = check_attention_args("test", q, k, v, out, AttentionOptions{}, nullptr);
  const attnc_linear::LinearParams params =
      linear::linear_params(q, k, v, out, check_key_mask("test", options.mask, shape));
  const host_emulation::Dim3 grid{uint32_t((DV + DV_TILE - 1) / DV_TILE), uint32_t(q.size(1)), uint32_t(q.size(0))};
  host_emulation::launch(grid, {64, 1, 1}, Kernel::kSharedBytes, [&] { Kernel::run(params); });
  return out;
}

template <class Elem, bool CAUSAL>
void check_template(DType dtype, int64_t q_len, int64_t kv_len, bool with_mask) {
  CAPTURE(dtype_name(dtype), CAUSAL, q_len, kv_len, with_mask);
  constexpr int D = 24, DV = 40;
  const Tensor q = uniform_tensor(1, dtype, {2, 4, q_len, D}, -2.0f, 2.0f);
  const Tensor k = uniform_tensor(2, dtype, {2, 2, kv_len, D}, -2.0f, 2.0f);
  const Tensor v = uniform_tensor(3, dtype, {2, 2, kv_len, DV});
  LinearAttentionOptions options;
  options.causal = CAUSAL;
  if (with_mask) {
    // Batch 0 drops every third key, batch 1 every key.
    std::vector<int32_t> bits(size_t(2 * kv_len), 0);
    for (int64_t j = 0; j < kv_len; ++j) bits[size_t(j)] = j % 3 != 2;
    options.mask = Tensor::from_vector(bits, {2, 1, 1, kv_len}, DType::U8);
  }
  const Tensor ref = linear_attention_reference(q, k, v, options);
  const double tolerance = dtype == DType::F32 ? kTolF32 : dtype == DType::F16 ? kTolF16 : kTolBF16;
  // Three value slices (16 + 16 + 8 columns) with chunks of 16; two slices (32 + 8) with chunks of 32.
  CHECK(attnc_test::relative_error(emulate<Elem, D, DV, 16, 16, CAUSAL>(q, k, v, options), ref) <= tolerance);
  CHECK(attnc_test::relative_error(emulate<Elem, D, DV, 32, 32, CAUSAL>(q, k, v, options), ref) <= tolerance);
}

}  // namespace

TEST_CASE("the CUDA linear attention template equals the fp64 formulas under host emulation", "[linear][cuda]") {
  const auto [q_len, kv_len] = GENERATE(table<int64_t, int64_t>({{37, 37}, {50, 21}, {9, 70}}));
  const bool with_mask = GENERATE(false, true);
  check_template<float, true>(DType::F32, q_len, kv_len, with_mask);
  check_template<float, false>(DType::F32, q_len, kv_len, with_mask);
  check_template<attnc_dev::bf16_t, true>(DType::BF16, q_len, kv_len, with_mask);
  check_template<attnc_dev::f16_t, false>(DType::F16, q_len, kv_len, with_mask);
}
