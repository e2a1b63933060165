// Ring attention over MPI, run by ctest with `mpirun -np 2`, `-np 3` and `-np 4` (oversubscribed on
// small machines): every rank runs every test case, since each is a collective. Inputs are drawn
// from seeds, identically on every rank; rank 0 compares the gathered output with the reference on
// the whole sequence (standard_attention, fp64) and with the in-process ring (ring_attention_local),
// which computes the same blocks and merges and so must agree bit for bit.
//
// Tolerances as in tests/distributed/RingAttentionTest.cpp: ||out - ref|| / ||ref|| <= 1e-5, LSEs
// within 2e-3 relative with -inf exactly where the reference has it.

#include <catch2/catch.hpp>

#include <mpi.h>

#include <vector>

#include "compiler/Frontend.h"
#include "distributed/MpiRing.h"
#include "distributed/RingBenchmark.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::distributed;
using namespace attnc::test;

namespace {

constexpr double kTol = 1e-5;

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// The whole-tensor entry point on rank 0, checked there against the reference and the local ring.
void check_from_root(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                     ShardLayout layout, DType out_dtype = DType::F32) {
  const bool root = world_rank() == 0;
  Tensor out = root ? Tensor::empty(out_dtype, attention_out_shape(q, v)) : Tensor(), lse;
  RingStats stats;
  RingOptions ring;
  ring.stats = &stats;
  ring.flash.num_threads = 1;  // P ranks share a small machine
  ring_attention_from_root(MPI_COMM_WORLD, 0, root ? q : Tensor(), root ? k : Tensor(), root ? v : Tensor(), out,
                           options, layout, ring, root ? &lse : nullptr);
  if (world_size() > 1) CHECK(stats.bytes_sent > 0);
  if (!root) return;
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  CHECK(attnc_test::nan_mismatches(out, ref) == 0);
  CHECK(attnc_test::relative_error_where_defined(out, ref) <= (out_dtype == DType::F32 ? kTol : 1.0 / 128));
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
  if (out_dtype == DType::F32) {
    Tensor local = Tensor::empty(DType::F32, attention_out_shape(q, v));
    FlashOptions flash;
    flash.num_threads = 1;
    ring_attention_local(q, k, v, local, world_size(), options, layout, flash);
    CHECK(attnc_test::nan_mismatches(out, local) == 0);
    CHECK(attnc_test::relative_error_where_defined(out, local) == 0.0);
  }
}

Tensor document_ids(int64_t batch, int64_t length) {
  std::vector<int32_t> ids(size_t(batch * length));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < length; ++i) ids[size_t(b * length + i)] = int32_t((i * (b + 2)) / 23);
  return Tensor::from_vector(ids, {batch, length});
}

}  // namespace

TEST_CASE("ring attention over MPI equals attention on the whole sequence", "[distributed][mpi]") {
  const ShardLayout layout = GENERATE(ShardLayout::ZigZag, ShardLayout::Contiguous);
  const int64_t length = 61;  // uneven shards for 2, 3 and 4 ranks
  CAPTURE(world_size(), shard_layout_name(layout));
  const Tensor q = uniform_tensor(1, DType::F32, {2, 4, length, 16});
  const Tensor k = uniform_tensor(2, DType::F32, {2, 2, length, 16});
  const Tensor v = uniform_tensor(3, DType::F32, {2, 2, length, 16});
  const Mod causal = causal_mod(), window = sliding_window_mod(9, true), alibi = alibi_mod(4);
  const Mod document = document_mask_mod(document_ids(2, length));
  AttentionOptions options;
  SECTION("causal") {
    options.mask_mod = &causal;
    check_from_root(q, k, v, options, layout);
  }
  SECTION("sliding window") {
    options.mask_mod = &window;
    check_from_root(q, k, v, options, layout);
  }
  SECTION("documents") {
    options.mask_mod = &document;
    check_from_root(q, k, v, options, layout);
  }
  SECTION("ALiBi, causal") {
    options.score_mod = &alibi;
    options.mask_mod = &causal;
    check_from_root(q, k, v, options, layout);
  }
  SECTION("a mask tensor with fully masked rows") {
    std::vector<int32_t> bits(size_t(length * length));
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j) bits[size_t(i * length + j)] = i % 10 != 3 && j <= i + 5;
    check_from_root(q, k, v, with_mask(options, Tensor::from_vector(bits, {length, length}, DType::Bool)), layout);
  }
}

TEST_CASE("ring attention over MPI moves bf16 shards and writes bf16 outputs", "[distributed][mpi]") {
  const Tensor q = uniform_tensor(4, DType::BF16, {1, 2, 45, 32});
  const Tensor k = uniform_tensor(5, DType::BF16, {1, 1, 45, 32});
  const Tensor v = uniform_tensor(6, DType::BF16, {1, 1, 45, 32});
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  check_from_root(q, k, v, options, ShardLayout::ZigZag, DType::BF16);
}

TEST_CASE("callers that hold their shards run the ring with the shard API", "[distributed][mpi]") {
  const int rank = world_rank(), ranks = world_size();
  const int64_t length = 50;
  const Tensor q = uniform_tensor(7, DType::F32, {1, 2, length, 8});
  const RingGeometry geometry = RingGeometry::self(length, ranks);
  const Tensor shard = geometry.q.extract(q, rank, 2);
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  Tensor out_shard = Tensor::empty(DType::F32, {1, 2, geometry.q.shard_length(rank), 8});
  ring_attention(MPI_COMM_WORLD, shard, shard, shard, out_shard, geometry, options);
  const Tensor ref = geometry.q.extract(standard_attention(q, q, q, options), rank, 2);
  CHECK(attnc_test::relative_error(out_shard, ref) <= kTol);
}

TEST_CASE("ranks that disagree on the mods all fail, none hangs", "[distributed][mpi]") {
  const int rank = world_rank(), ranks = world_size();
  const RingGeometry geometry = RingGeometry::self(20, ranks);
  const Tensor shard = uniform_tensor(8, DType::F32, {1, 1, geometry.q.shard_length(rank), 4});
  const Mod causal = causal_mod(), window = sliding_window_mod(3, true);
  AttentionOptions options;
  options.mask_mod = rank == ranks - 1 ? &window : &causal;
  Tensor out = Tensor::empty(DType::F32, shard.shape());
  if (rank == ranks - 1) {
    CHECK_THROWS_WITH(ring_attention(MPI_COMM_WORLD, shard, shard, shard, out, geometry, options),
                      Catch::Contains("ring_attention: rank") && Catch::Contains("but rank 0 with"));
  } else {
    CHECK_THROWS_WITH(ring_attention(MPI_COMM_WORLD, shard, shard, shard, out, geometry, options),
                      Catch::Contains("another rank was called with other arguments"));
  }
}

TEST_CASE("an out-of-range index on one rank fails every rank after the ring completes", "[distributed][mpi]") {
  // A bounds-checked score mod reading t[q_idx] with t 4 positions short: only the last rank of a
  // contiguous ring holds those queries. It throws in its local kernel, keeps forwarding K/V, and
  // every rank throws at the end instead of waiting for it.
  const int rank = world_rank(), ranks = world_size();
  const int64_t length = 24;
  const RingGeometry geometry = RingGeometry::self(length, ranks, ShardLayout::Contiguous);
  const Tensor shard = uniform_tensor(9, DType::F32, {1, 1, geometry.q.shard_length(rank), 4});
  const Mod bias = Mod::from_module(ir::load_module_text("t.attn", "score_mod s(t: float[N]) = score + t[q_idx];"), "s")
                       .bind("t", Tensor::zeros(DType::F32, {length - 4}));
  AttentionOptions options;
  options.score_mod = &bias;
  options.check_bounds = true;
  Tensor out = Tensor::empty(DType::F32, shard.shape());
  if (rank == ranks - 1) {
    CHECK_THROWS_WITH(ring_attention(MPI_COMM_WORLD, shard, shard, shard, out, geometry, options),
                      Catch::Contains("out of range"));
  } else {
    CHECK_THROWS_WITH(ring_attention(MPI_COMM_WORLD, shard, shard, shard, out, geometry, options),
                      Catch::Contains("another rank failed during the ring"));
  }
}

TEST_CASE("the ring benchmark runs on small sizes", "[distributed][mpi][benchmark]") {
  // Only that it runs and its outputs agree: timings are for docs/distributed.md, measured elsewhere.
  RingBenchmarkConfig config;
  config.heads = config.kv_heads = 2;
  config.length = 96;
  config.head_dim = 16;
  config.repeats = 1;
  config.threads_per_rank = 1;
  const RingBenchmarkResult result = benchmark_ring(MPI_COMM_WORLD, config);
  CHECK(result.ranks == world_size());
  if (world_rank() != 0) return;
  CHECK(result.ring_seconds > 0);
  CHECK(result.single_seconds > 0);
  CHECK(result.overhead == Approx(result.ring_seconds / result.single_seconds));
  CHECK(result.max_error < 1e-5);
  CHECK(result.root_stats.blocks_computed == 2 * world_size() + 1);
}
