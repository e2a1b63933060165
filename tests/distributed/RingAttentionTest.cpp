// The ring's algorithm without a transport (ring_attention_local: every rank and step in one
// process, the blocks and merges the MPI ring computes) against the reference on the whole
// sequence; the MPI ring itself is tests/distributed/mpi/RingMpiTest.cpp.

#include "distributed/RingAttention.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::distributed;
using namespace attnc::test;

// Tolerances: the ring's blocks are the flash kernel's and merging normalised partial results by
// their LSEs adds fp32 rounding per step, against the fp64 reference: ||out - ref|| / ||ref|| <=
// kTol with fp32 products; fp16 / bf16 inputs may run the flash kernel's bf16 products (P rounded
// to bf16, docs/cpu-backend.md): kTolBf16Products. LSEs within 2e-3 relative and -inf / NaN exactly
// where the reference has them (tests/support/AttentionComparison.h).
namespace {

constexpr double kTol = 1e-5;
constexpr double kTolBf16Products = 1.0 / 128;

Tensor document_ids(int64_t batch, int64_t length, int64_t per_document) {
  std::vector<int32_t> ids(size_t(batch * length));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < length; ++i) ids[size_t(b * length + i)] = int32_t((i + b * 3) / per_document);
  return Tensor::from_vector(ids, {batch, length});
}

void check_ring(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options, int ranks,
                ShardLayout layout, double tolerance = kTol) {
  Tensor out = Tensor::empty(DType::F32, attention_out_shape(q, v)), lse;
  ring_attention_local(q, k, v, out, ranks, options, layout, FlashOptions{}, &lse);
  Tensor ref = Tensor::empty(DType::F32, attention_out_shape(q, v)), ref_lse;
  ring_attention_reference(q, k, v, ref, options, &ref_lse);
  CHECK(attnc_test::nan_mismatches(out, ref) == 0);
  CHECK(attnc_test::relative_error_where_defined(out, ref) <= tolerance);
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

}  // namespace

TEST_CASE("the ring's blocks and merges equal attention on the whole sequence", "[distributed][ring]") {
  const int ranks = GENERATE(1, 2, 3, 4, 5);
  const ShardLayout layout = GENERATE(ShardLayout::ZigZag, ShardLayout::Contiguous);
  const int64_t length = 53;  // uneven for every ring size
  CAPTURE(ranks, shard_layout_name(layout));
  const Tensor q = uniform_tensor(1, DType::F32, {2, 4, length, 16});
  const Tensor k = uniform_tensor(2, DType::F32, {2, 2, length, 16});
  const Tensor v = uniform_tensor(3, DType::F32, {2, 2, length, 16});
  const Mod causal = causal_mod(), window = sliding_window_mod(7, true), alibi = alibi_mod(4);
  const Mod document = document_mask_mod(document_ids(2, length, 11));
  const Mod bottom_right = causal_bottom_right_mod();  // reads q_len and kv_len: must be the sequence's
  AttentionOptions options;
  SECTION("no mods") { check_ring(q, k, v, options, ranks, layout); }
  SECTION("causal") {
    options.mask_mod = &causal;
    check_ring(q, k, v, options, ranks, layout);
  }
  SECTION("sliding window with ALiBi") {
    options.mask_mod = &window;
    options.score_mod = &alibi;
    check_ring(q, k, v, options, ranks, layout);
  }
  SECTION("documents") {
    options.mask_mod = &document;
    check_ring(q, k, v, options, ranks, layout);
  }
  SECTION("a mask tensor with fully masked rows, anded with bottom-right causal") {
    std::vector<int32_t> bits(size_t(length * length));
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j) bits[size_t(i * length + j)] = i % 9 != 4 && (i + 2 * j) % 3 != 0;
    options.mask_mod = &bottom_right;
    check_ring(q, k, v, with_mask(options, Tensor::from_vector(bits, {length, length}, DType::Bool)), ranks, layout);
  }
}

TEST_CASE("the ring handles cross attention, fp16 / bf16 inputs and NaN rows", "[distributed][ring]") {
  const DType dtype = GENERATE(DType::F16, DType::BF16);
  const Tensor q = uniform_tensor(4, dtype, {1, 2, 19, 8});
  const Tensor k = uniform_tensor(5, dtype, {1, 1, 31, 8});
  const Tensor v = uniform_tensor(6, dtype, {1, 1, 31, 8});
  check_ring(q, k, v, AttentionOptions{}, 3, ShardLayout::ZigZag, kTolBf16Products);
  q.set_float({0, 1, 5, 2}, NAN);
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  check_ring(q, k, v, options, 3, ShardLayout::ZigZag, kTolBf16Products);
}

TEST_CASE("the ring skips the blocks the mask proves empty, and zig-zag balances them", "[distributed][ring]") {
  const int ranks = 4;
  const int64_t length = 8 * 16;  // 2P chunks of 16 positions
  const Tensor q = uniform_tensor(7, DType::F32, {1, 2, length, 8});
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  Tensor out = Tensor::empty(DType::F32, {1, 2, length, 8});
  std::vector<RingStats> stats;
  ring_attention_local(q, q, q, out, ranks, options, ShardLayout::ZigZag, FlashOptions{}, nullptr, &stats);
  // Of the (2P)^2 chunk pairs, the 2P (2P + 1) / 2 on or below the diagonal are computed: 2P + 1 per rank.
  for (const RingStats& s : stats) {
    CHECK(s.blocks_computed == 2 * ranks + 1);
    CHECK(s.blocks_skipped == 4 * ranks - (2 * ranks + 1));
  }
  ring_attention_local(q, q, q, out, ranks, options, ShardLayout::Contiguous, FlashOptions{}, nullptr, &stats);
  for (int r = 0; r < ranks; ++r) CHECK(stats[size_t(r)].blocks_computed == r + 1);  // unbalanced
}

TEST_CASE("K/V messages are B Hkv L (D + Dv) elements of their dtypes", "[distributed][ring]") {
  const Sharding kv(37, 3);
  CHECK(kv_shard_bytes(kv, 0, 2, 4, 64, 32, DType::BF16, DType::F32) == 2 * 4 * kv.shard_length(0) * (64 * 2 + 32 * 4));
}

TEST_CASE("the ring refuses shards that do not match the geometry", "[distributed][ring]") {
  const RingGeometry geometry = RingGeometry::self(20, 2);
  const Tensor q = uniform_tensor(8, DType::F32, {1, 1, 9, 4});
  CHECK_THROWS_WITH(RingRank(q, geometry, 0, AttentionOptions{}),
                    Catch::Contains("rank 0 holds 10 query positions of 20 in a zigzag ring"));
}

TEST_CASE("the ring places queries after cached keys with q_offset", "[distributed][ring]") {
  // Five new queries at positions 40..44 against 45 keys, causal: decoding after a prefill.
  const Tensor q = uniform_tensor(9, DType::F32, {1, 2, 5, 8});
  const Tensor k = uniform_tensor(10, DType::F32, {1, 2, 45, 8});
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  options.q_offset = 40;
  check_ring(q, k, k, options, 3, ShardLayout::ZigZag);
}
