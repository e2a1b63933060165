#include "runtime/families/linear/LinearCpu.h"

#include <catch2/catch.hpp>

#include <vector>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/reference/LinearReference.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

// Tolerances. The kernel sums in fp32 (gemm micro-kernels, vector exp2 for phi, relative error about
// 1e-8), the reference in fp64, over at most a few hundred keys: outputs agree within kTolF32 as
// ||out - ref|| / ||ref||. fp16 / bf16 inputs are rounded once when the tensors are made and both
// read the same values; fp16 / bf16 outputs are compared within their own rounding.
namespace {

constexpr double kTolF32 = 1e-5;
constexpr double kTolF16 = 1.0 / 1024;
constexpr double kTolBF16 = 1.0 / 128;

void check_against_reference(const Tensor& q, const Tensor& k, const Tensor& v, const LinearAttentionOptions& options,
                             DType out_dtype = DType::F32) {
  Tensor out = Tensor::empty(out_dtype, attention_out_shape(q, v));
  linear_attention_cpu(q, k, v, out, options);
  const Tensor ref = linear_attention_reference(q, k, v, options);
  const double tolerance = out_dtype == DType::F32 ? kTolF32 : out_dtype == DType::F16 ? kTolF16 : kTolBF16;
  CHECK(attnc_test::relative_error(out, ref) <= tolerance);
}

}  // namespace

TEST_CASE("linear attention on the CPU equals the fp64 formulas", "[linear]") {
  const auto [name, heads, kv_heads, q_len, kv_len, head_dim, value_dim] =
      GENERATE(table<const char*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>({
          {"odd lengths", 2, 2, 77, 77, 24, 24},
          {"GQA, more keys than queries", 6, 2, 45, 70, 16, 8},
          {"MQA, more queries than keys", 4, 1, 90, 33, 32, 32},
          {"one token", 2, 2, 1, 1, 8, 8},
      }));
  const bool causal = GENERATE(true, false);
  const int chunk = GENERATE(1, 5, 64, 200);
  CAPTURE(name, causal, chunk);
  const Tensor q = uniform_tensor(1, DType::F32, {2, heads, q_len, head_dim}, -2.0f, 2.0f);
  const Tensor k = uniform_tensor(2, DType::F32, {2, kv_heads, kv_len, head_dim}, -2.0f, 2.0f);
  const Tensor v = uniform_tensor(3, DType::F32, {2, kv_heads, kv_len, value_dim});
  LinearAttentionOptions options;
  options.causal = causal;
  options.chunk_size = chunk;
  SECTION("every key") { check_against_reference(q, k, v, options); }
  SECTION("a key-padding mask, with one batch masking every key") {
    std::vector<int32_t> bits(size_t(2 * kv_len), 0);
    for (int64_t j = 0; j < kv_len; ++j) bits[size_t(j)] = j % 3 != 1;
    options.mask = Tensor::from_vector(bits, {2, 1, 1, kv_len}, DType::Bool);
    check_against_reference(q, k, v, options);
    Tensor out = Tensor::empty(DType::F32, attention_out_shape(q, v));
    linear_attention_cpu(q, k, v, out, options);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < q_len; ++i) CHECK(out.get_float({1, h, i, 0}) == 0.0f);
  }
}

TEST_CASE("linear attention on the CPU reads fp16 and bf16, writes any float output, any strides", "[linear]") {
  const DType in = GENERATE(DType::F32, DType::F16, DType::BF16);
  const DType out = GENERATE(DType::F32, DType::F16, DType::BF16);
  CAPTURE(dtype_name(in), dtype_name(out));
  // k as a transposed view: (B, S, Hkv, D) memory seen as (B, Hkv, S, D).
  const Tensor q = uniform_tensor(4, in, {1, 4, 37, 16}, -3.0f, 3.0f);
  const Tensor k_memory = uniform_tensor(5, in, {1, 37, 2, 16}, -3.0f, 3.0f);
  const Tensor k = Tensor::from_storage(std::shared_ptr<void>(std::make_shared<Tensor>(k_memory), k_memory.data()),
                                        k_memory.data(), in, {1, 2, 37, 16}, {37 * 32, 16, 32, 1});
  const Tensor v = uniform_tensor(6, in, {1, 2, 37, 16});
  LinearAttentionOptions options;
  options.chunk_size = 8;
  check_against_reference(q, k, v, options, out);
}

TEST_CASE("linear attention on the CPU refuses what the reference refuses, and chunk sizes below 1", "[linear]") {
  const Tensor q = uniform_tensor(7, DType::F32, {1, 3, 4, 8});
  const Tensor k = uniform_tensor(8, DType::F32, {1, 2, 4, 8});
  Tensor out = Tensor::empty(DType::F32, {1, 3, 4, 8});
  CHECK_THROWS_WITH(linear_attention_cpu(q, k, k, out),
                    Catch::Contains("linear_attention: the 3 query heads are not a multiple of the 2"));
  LinearAttentionOptions options;
  options.chunk_size = 0;
  CHECK_THROWS_WITH(linear_attention_cpu(q, q, q, out, options), Catch::Contains("chunk_size must be at least 1"));
}
