#include "runtime/families/memory_efficient/MemoryEfficientCpu.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

// Tolerances. The kernel computes products, softmax and accumulator in fp32, the reference
// (standard_attention) in fp64; both read the same fp16 / bf16 values when the inputs are stored so.
// Outputs are compared as ||out - ref|| / ||ref|| <= kTolF32 (fp32 outputs); outputs stored as
// fp16 / bf16 within their rounding (kTolF16, kTolBF16); LSEs within 2e-3 relative and exactly -inf
// (or NaN) where the reference's is (AttentionComparison.h).
namespace {

constexpr double kTolF32 = 2e-6;
constexpr double kTolF16 = 1.0 / 1024;
constexpr double kTolBF16 = 1.0 / 128;

double tolerance_for(DType out) { return out == DType::F32 ? kTolF32 : out == DType::F16 ? kTolF16 : kTolBF16; }

// Runs the kernel and the reference on the same inputs and compares outputs, LSEs and NaN rows.
void check_against_reference(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                             int block_size, DType out_dtype = DType::F32) {
  Tensor out = Tensor::empty(out_dtype, attention_out_shape(q, v));
  Tensor lse;
  BlockwiseOptions blockwise;
  blockwise.block_size = block_size;
  memory_efficient_attention(q, k, v, out, options, blockwise, &lse);
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  CHECK(attnc_test::nan_mismatches(out, ref) == 0);
  CHECK(attnc_test::relative_error_where_defined(out, ref) <= tolerance_for(out_dtype));
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

}  // namespace

TEST_CASE("memory-efficient attention equals standard attention for every block size", "[memory_efficient]") {
  const auto [name, heads, kv_heads, q_len, kv_len, head_dim] =
      GENERATE(table<const char*, int64_t, int64_t, int64_t, int64_t, int64_t>({
          {"odd lengths", 2, 2, 77, 101, 24},
          {"GQA, queries longer than keys", 6, 2, 45, 33, 16},
          {"MQA, one query", 4, 1, 1, 130, 64},
          {"odd head dim", 1, 1, 19, 19, 7},
      }));
  const int block_size = GENERATE(1, 7, 32, 512);
  CAPTURE(name, block_size);
  const Tensor q = uniform_tensor(1, DType::F32, {2, heads, q_len, head_dim});
  const Tensor k = uniform_tensor(2, DType::F32, {2, kv_heads, kv_len, head_dim});
  const Tensor v = uniform_tensor(3, DType::F32, {2, kv_heads, kv_len, head_dim});
  const Mod causal = causal_mod(), window = sliding_window_mod(9, true);
  const Mod alibi_softcap = compose_score_mods({alibi_mod(int(heads)), softcap_mod(3.0f)});
  AttentionOptions options;
  SECTION("no mods") { check_against_reference(q, k, v, options, block_size); }
  SECTION("causal") {
    options.mask_mod = &causal;
    check_against_reference(q, k, v, options, block_size);
  }
  SECTION("sliding window with ALiBi and soft-capping") {
    options.mask_mod = &window;
    options.score_mod = &alibi_softcap;
    check_against_reference(q, k, v, options, block_size);
  }
  SECTION("a boolean mask tensor anded with causal, with fully masked rows") {
    // Row 3 of every head keeps nothing; elsewhere a pseudo-random pattern.
    std::vector<int32_t> bits(size_t(q_len * kv_len));
    for (int64_t i = 0; i < q_len; ++i)
      for (int64_t j = 0; j < kv_len; ++j) bits[size_t(i * kv_len + j)] = i != 3 && (i * 7 + j * 3) % 5 != 0;
    options.mask_mod = &causal;
    check_against_reference(q, k, v, with_mask(options, Tensor::from_vector(bits, {q_len, kv_len}, DType::Bool)),
                            block_size);
  }
}

TEST_CASE("memory-efficient attention reads fp16 and bf16 inputs and writes any float output", "[memory_efficient]") {
  const DType in = GENERATE(DType::F16, DType::BF16);
  const DType out = GENERATE(DType::F32, DType::F16, DType::BF16);
  CAPTURE(dtype_name(in), dtype_name(out));
  const Tensor q = uniform_tensor(4, in, {1, 4, 50, 32});
  const Tensor k = uniform_tensor(5, in, {1, 2, 61, 32});
  const Tensor v = uniform_tensor(6, in, {1, 2, 61, 32});
  const Tensor ids = Tensor::from_vector(
      [] {
        std::vector<int32_t> ids(61);
        for (int i = 0; i < 61; ++i) ids[size_t(i)] = i / 17;
        return ids;
      }(),
      {1, 61});
  const Mod document = document_mask_mod(ids);
  AttentionOptions options;
  options.mask_mod = &document;
  check_against_reference(q, k, v, options, 16, out);
}

TEST_CASE("memory-efficient attention places queries with q_offset and makes kept NaN rows NaN", "[memory_efficient]") {
  const Tensor q = uniform_tensor(7, DType::F32, {1, 2, 5, 16});
  const Tensor k = uniform_tensor(8, DType::F32, {1, 2, 40, 16});
  const Tensor v = uniform_tensor(9, DType::F32, {1, 2, 40, 16});
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  options.q_offset = 35;  // the last five positions of a 40-token sequence
  check_against_reference(q, k, v, options, 8);
  q.set_float({0, 1, 2, 3}, NAN);
  check_against_reference(q, k, v, options, 8);
}

TEST_CASE("memory-efficient attention's block size sets its blocks and what the mask skips", "[memory_efficient]") {
  const Tensor q = uniform_tensor(10, DType::F32, {1, 1, 256, 16});
  const Tensor k = uniform_tensor(11, DType::F32, {1, 1, 256, 16});
  const Tensor v = uniform_tensor(12, DType::F32, {1, 1, 256, 16});
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  Tensor out = Tensor::empty(DType::F32, {1, 1, 256, 16});
  BlockwiseStats stats;
  BlockwiseOptions blockwise;
  blockwise.stats = &stats;
  blockwise.block_size = 64;  // 4 x 4 blocks: 6 above the diagonal skipped, 4 on it masked
  memory_efficient_attention(q, k, v, out, options, blockwise);
  CHECK(stats.blocks_computed == 10);
  CHECK(stats.blocks_skipped == 6);
  CHECK(stats.blocks_partial == 4);
  CHECK(stats.blocks_full == 6);
  blockwise.block_size = 512;  // one block, masked element by element
  memory_efficient_attention(q, k, v, out, options, blockwise);
  CHECK(stats.blocks_computed == 1);
  CHECK(stats.blocks_partial == 1);
  blockwise.block_size = 0;
  CHECK_THROWS_WITH(memory_efficient_attention(q, k, v, out, options, blockwise),
                    Catch::Contains("memory_efficient_attention: block_size must be at least 1"));
}

TEST_CASE("memory-efficient attention takes attnax's mask argument", "[memory_efficient]") {
  const Tensor q = uniform_tensor(13, DType::F32, {2, 2, 9, 8});
  const Tensor k = uniform_tensor(14, DType::F32, {2, 2, 11, 8});
  const Tensor v = uniform_tensor(15, DType::F32, {2, 2, 11, 8});
  // A (B, 1, 1, Skv) padding mask: batch 1 drops its last four keys.
  std::vector<int32_t> bits(22, 1);
  for (int j = 7; j < 11; ++j) bits[size_t(11 + j)] = 0;
  const Tensor pad = Tensor::from_vector(bits, {2, 1, 1, 11}, DType::Bool);
  const Tensor out = memory_efficient_attention(q, k, v, pad, AttentionOptions{}, 4);
  const Tensor ref = standard_attention(q, k, v, with_mask(AttentionOptions{}, pad));
  CHECK(attnc_test::relative_error(out, ref) <= kTolF32);
  CHECK(attnc_test::relative_error(memory_efficient_attention(q, k, v, Tensor(), AttentionOptions{}, 4),
                                   standard_attention(q, k, v)) <= kTolF32);
}
