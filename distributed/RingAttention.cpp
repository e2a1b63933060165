#include "distributed/RingAttention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/reference/ReferenceAttention.h"

namespace attnc::distributed {

namespace {

constexpr const char* kFunction = "ring_attention";
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Merges one block's rows (out_b, lse_b: (B, H, rows, Dv) and (B, H, rows), contiguous fp32) into
// the accumulator's rows [row0, row0 + rows) (acc_out (B, H, Lq, Dv), acc_lse (B, H, Lq)).
void merge_block(float* acc_out, float* acc_lse, const float* out_b, const float* lse_b, int64_t pairs, int64_t lq,
                 int64_t row0, int64_t rows, int64_t dv) {
  for (int64_t bh = 0; bh < pairs; ++bh) {
    for (int64_t r = 0; r < rows; ++r) {
      float& la = acc_lse[bh * lq + row0 + r];
      const float lb = lse_b[bh * rows + r];
      float* oa = acc_out + (bh * lq + row0 + r) * dv;
      const float* ob = out_b + (bh * rows + r) * dv;
      if (lb == kMinusInf) continue;           // the block saw no key of this row: weight 0
      if (std::isnan(lb) || std::isnan(la)) {  // a kept NaN score makes the whole row NaN
        la = std::numeric_limits<float>::quiet_NaN();
        std::fill(oa, oa + dv, la);
        continue;
      }
      if (la == kMinusInf) {
        la = lb;
        std::copy(ob, ob + dv, oa);
        continue;
      }
      const float m = std::max(la, lb);
      const float wa = std::exp(la - m), wb = std::exp(lb - m), sum = wa + wb;
      for (int64_t d = 0; d < dv; ++d) oa[d] = (wa * oa[d] + wb * ob[d]) / sum;
      la = m + std::log(sum);
    }
  }
}

}  // namespace

struct RingRank::State {
  Tensor q;
  RingGeometry geometry;
  int rank;
  AttentionOptions options;
  FlashOptions flash;
  RingStats* user_stats;
  std::optional<BlockMod> score, mask;
  std::shared_ptr<const CpuModProgram> mask_program;
  int64_t batch, heads, q_len_local, value_dim = -1;
  std::vector<float> acc_out, acc_lse;
  RingStats stats;

  State(const Tensor& q_shard, const RingGeometry& g, int r, const AttentionOptions& o, const RingOptions& ring)
      : q(q_shard), geometry(g), rank(r), options(o), flash(ring.flash), user_stats(ring.stats) {
    flash.stats = nullptr;
    if (q.rank() != 4)
      throw RuntimeError(fmt::format("{}: q must have rank 4 (B, H, S, D), got {}", kFunction, q.describe()));
    batch = q.size(0), heads = q.size(1), q_len_local = q.size(2);
    if (q_len_local != geometry.q.shard_length(rank)) {
      throw RuntimeError(fmt::format("{}: rank {} holds {} query positions of {} in a {} ring, but its q shard is {}",
                                     kFunction, rank, geometry.q.shard_length(rank), geometry.q.length(),
                                     shard_layout_name(geometry.q.layout()), q.describe()));
    }
    if (options.score_mod) score.emplace(block_view_mod(*options.score_mod));
    if (options.mask_mod) {
      mask.emplace(block_view_mod(*options.mask_mod));
      mask_program = compile_cpu_program(mask->mod, flash.backend);
    }
  }
};

RingRank::RingRank(const Tensor& q_shard, const RingGeometry& geometry, int rank, const AttentionOptions& options,
                   const RingOptions& ring)
    : state_(std::make_unique<State>(q_shard, geometry, rank, options, ring)) {}

RingRank::~RingRank() = default;

const RingStats& RingRank::stats() const { return state_->stats; }

void RingRank::attend(const Tensor& k_shard, const Tensor& v_shard, int source,
                      const std::function<void()>& between_blocks) {
  State& s = *state_;
  const auto start = std::chrono::steady_clock::now();
  const Sharding& kv = s.geometry.kv;
  if (k_shard.rank() != 4 || v_shard.rank() != 4 || k_shard.size(2) != kv.shard_length(source) ||
      v_shard.size(2) != kv.shard_length(source)) {
    throw RuntimeError(fmt::format("{}: rank {}'s K/V shard must hold its {} key positions: k {}, v {}", kFunction,
                                   source, kv.shard_length(source), k_shard.describe(), v_shard.describe()));
  }
  const int64_t dv = v_shard.size(3);
  if (s.value_dim < 0) {
    s.value_dim = dv;
    s.acc_out.assign(static_cast<size_t>(s.batch * s.heads * s.q_len_local * dv), 0.0f);
    s.acc_lse.assign(static_cast<size_t>(s.batch * s.heads * s.q_len_local), kMinusInf);
  } else if (dv != s.value_dim) {
    throw RuntimeError(fmt::format("{}: rank {}'s v shard {} has another value dim than {}", kFunction, source,
                                   v_shard.describe(), s.value_dim));
  }
  const auto q_len = static_cast<int32_t>(s.geometry.q.length()), kv_len = static_cast<int32_t>(kv.length());
  for (const Sharding::Segment& qs : s.geometry.q.segments(s.rank)) {
    for (const Sharding::Segment& ks : kv.segments(source)) {
      const auto kv_first = static_cast<int32_t>(ks.global_first);
      std::optional<Mod> mask_at, score_at;
      if (s.mask) {
        mask_at.emplace(s.mask->at(kv_first, q_len, kv_len));
        // The whole block, every (b, h): EMPTY everywhere means nothing to compute.
        const CpuModArgs args = CpuModArgs::pack(*mask_at, false);
        bool empty = true;
        for (int64_t b = 0; b < s.batch && empty; ++b) {
          for (int64_t h = 0; h < s.heads && empty; ++h) {
            const TilePosition at{static_cast<int32_t>(b),         static_cast<int32_t>(h),
                                  static_cast<int32_t>(qs.length), static_cast<int32_t>(ks.length),
                                  static_cast<int32_t>(s.heads),   static_cast<int32_t>(k_shard.size(1))};
            const auto q_first = static_cast<int32_t>(s.options.q_offset + qs.global_first);
            empty = s.mask_program->classify(q_first, static_cast<int32_t>(q_first + qs.length - 1), 0,
                                             static_cast<int32_t>(ks.length - 1), at, args) == ir::TileClass::Empty;
          }
        }
        if (empty) {
          ++s.stats.blocks_skipped;
          continue;
        }
      }
      if (s.score) score_at.emplace(s.score->at(kv_first, q_len, kv_len));
      AttentionOptions block = s.options;
      block.score_mod = score_at ? &*score_at : nullptr;
      block.mask_mod = mask_at ? &*mask_at : nullptr;
      block.q_offset = static_cast<int32_t>(s.options.q_offset + qs.global_first);
      Tensor out = Tensor::empty(DType::F32, {s.batch, s.heads, qs.length, dv});
      Tensor lse = Tensor::empty(DType::F32, {s.batch, s.heads, qs.length});
      flash_attention(narrow(s.q, 2, qs.local_first, qs.length), narrow(k_shard, 2, ks.local_first, ks.length),
                      narrow(v_shard, 2, ks.local_first, ks.length), out, block, s.flash, &lse);
      merge_block(s.acc_out.data(), s.acc_lse.data(), static_cast<const float*>(out.data()),
                  static_cast<const float*>(lse.data()), s.batch * s.heads, s.q_len_local, qs.local_first, qs.length,
                  dv);
      ++s.stats.blocks_computed;
      if (between_blocks) between_blocks();
    }
  }
  s.stats.compute_seconds += seconds_since(start);
  if (s.user_stats) *s.user_stats = s.stats;
}

void RingRank::finish(Tensor& out_shard, Tensor* lse_shard) const {
  const State& s = *state_;
  const int64_t dv = std::max<int64_t>(s.value_dim, 0);
  const std::vector<int64_t> out_shape{s.batch, s.heads, s.q_len_local, dv};
  if (!out_shard.defined() || out_shard.shape() != out_shape || !dtype_is_float(out_shard.dtype())) {
    throw RuntimeError(fmt::format("{}: out must be a float tensor of shape {}, got {}", kFunction,
                                   shape_to_string(out_shape), out_shard.describe()));
  }
  if (s.value_dim < 0) throw RuntimeError(fmt::format("{}: finish() before any attend()", kFunction));
  copy_into(Tensor::from_data(const_cast<float*>(s.acc_out.data()), DType::F32, out_shape), out_shard);
  if (lse_shard) {
    const std::vector<int64_t> lse_shape{s.batch, s.heads, s.q_len_local};
    if (!lse_shard->defined()) *lse_shard = Tensor::empty(DType::F32, lse_shape);
    copy_into(Tensor::from_data(const_cast<float*>(s.acc_lse.data()), DType::F32, lse_shape), *lse_shard);
  }
}

int64_t kv_shard_bytes(const Sharding& kv, int source, int64_t batch, int64_t kv_heads, int64_t head_dim,
                       int64_t value_dim, DType k_dtype, DType v_dtype) {
  const int64_t rows = batch * kv_heads * kv.shard_length(source);
  return rows *
         (head_dim * static_cast<int64_t>(dtype_size(k_dtype)) + value_dim * static_cast<int64_t>(dtype_size(v_dtype)));
}

void ring_attention(RingTransport& transport, const Tensor& q_shard, const Tensor& k_shard, const Tensor& v_shard,
                    Tensor& out_shard, const RingGeometry& geometry, const AttentionOptions& options,
                    const RingOptions& ring, Tensor* lse_shard) {
  const int rank = transport.rank(), ranks = transport.ranks();
  std::exception_ptr failure;
  std::unique_ptr<RingRank> local;
  int64_t batch = 0, kv_heads = 0, head_dim = 0, value_dim = 0;
  try {
    if (geometry.q.ranks() != ranks || geometry.kv.ranks() != ranks) {
      throw RuntimeError(fmt::format("{}: the geometry cuts for {} / {} ranks, but the ring has {}", kFunction,
                                     geometry.q.ranks(), geometry.kv.ranks(), ranks));
    }
    if (k_shard.rank() != 4 || v_shard.rank() != 4) {
      throw RuntimeError(fmt::format("{}: k and v must have rank 4, got {} and {}", kFunction, k_shard.describe(),
                                     v_shard.describe()));
    }
    batch = k_shard.size(0), kv_heads = k_shard.size(1), head_dim = k_shard.size(3), value_dim = v_shard.size(3);
    // The shapes every block will see, checked once here as the flash kernel will check them.
    check_attention_args(kFunction, q_shard, k_shard, v_shard, out_shard, AttentionOptions{}, nullptr);
    if (k_shard.size(2) != geometry.kv.shard_length(rank)) {
      throw RuntimeError(fmt::format("{}: rank {} holds {} key positions of {} in a {} ring, but its k shard is {}",
                                     kFunction, rank, geometry.kv.shard_length(rank), geometry.kv.length(),
                                     shard_layout_name(geometry.kv.layout()), k_shard.describe()));
    }
    local = std::make_unique<RingRank>(q_shard, geometry, rank, options, ring);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!transport.all_ok(failure == nullptr)) {
    if (failure) std::rethrow_exception(failure);
    throw RuntimeError(fmt::format("{}: another rank refused its arguments (see its error)", kFunction));
  }

  // Two buffers of the largest shard: the one being attended to (and sent on), the one receiving.
  int64_t largest = 0;
  for (int r = 0; r < ranks; ++r) {
    largest = std::max(largest, kv_shard_bytes(geometry.kv, r, batch, kv_heads, head_dim, value_dim, k_shard.dtype(),
                                               v_shard.dtype()));
  }
  std::vector<unsigned char> current(static_cast<size_t>(largest)), next(static_cast<size_t>(largest));
  const Tensor own_k = contiguous_as(k_shard, k_shard.dtype()), own_v = contiguous_as(v_shard, v_shard.dtype());
  const size_t own_k_bytes = static_cast<size_t>(own_k.numel()) * dtype_size(own_k.dtype());
  std::memcpy(current.data(), own_k.data(), own_k_bytes);
  std::memcpy(current.data() + own_k_bytes, own_v.data(),
              static_cast<size_t>(own_v.numel()) * dtype_size(own_v.dtype()));

  RingStats totals;
  for (int step = 0; step < ranks; ++step) {
    const int source = ((rank - step) % ranks + ranks) % ranks;
    const int64_t bytes =
        kv_shard_bytes(geometry.kv, source, batch, kv_heads, head_dim, value_dim, k_shard.dtype(), v_shard.dtype());
    const bool forward = step + 1 < ranks;
    if (forward) {
      const int incoming = ((source - 1) % ranks + ranks) % ranks;
      transport.start(current.data(), static_cast<size_t>(bytes), next.data(),
                      static_cast<size_t>(kv_shard_bytes(geometry.kv, incoming, batch, kv_heads, head_dim, value_dim,
                                                         k_shard.dtype(), v_shard.dtype())));
      totals.bytes_sent += bytes;
    }
    if (!failure) {
      try {
        const int64_t length = geometry.kv.shard_length(source);
        const Tensor k = Tensor::from_data(current.data(), k_shard.dtype(), {batch, kv_heads, length, head_dim});
        const size_t k_bytes = static_cast<size_t>(k.numel()) * dtype_size(k.dtype());
        const Tensor v =
            Tensor::from_data(current.data() + k_bytes, v_shard.dtype(), {batch, kv_heads, length, value_dim});
        local->attend(k, v, source, [&] { transport.progress(); });
      } catch (...) {
        failure = std::current_exception();  // keep moving data, so no rank waits forever
      }
    }
    if (forward) {
      const auto wait_start = std::chrono::steady_clock::now();
      transport.wait();
      totals.wait_seconds += seconds_since(wait_start);
      std::swap(current, next);
    }
  }
  if (!failure) {
    try {
      local->finish(out_shard, lse_shard);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (ring.stats) {
    *ring.stats = local ? local->stats() : RingStats{};
    ring.stats->bytes_sent = totals.bytes_sent;
    ring.stats->wait_seconds = totals.wait_seconds;
  }
  if (!transport.all_ok(failure == nullptr)) {
    if (failure) std::rethrow_exception(failure);
    throw RuntimeError(fmt::format("{}: another rank failed during the ring (see its error)", kFunction));
  }
}

void ring_attention_local(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, int ranks,
                          const AttentionOptions& options, ShardLayout layout, const FlashOptions& flash, Tensor* lse,
                          std::vector<RingStats>* stats) {
  const char* function = "ring_attention_local";
  const AttentionShape shape = check_attention_args(function, q, k, v, out, options, lse);
  const RingGeometry geometry{Sharding(shape.q_len, ranks, layout), Sharding(shape.kv_len, ranks, layout)};
  std::vector<Tensor> k_shards, v_shards;
  for (int r = 0; r < ranks; ++r) {
    k_shards.push_back(geometry.kv.extract(k, r, 2));
    v_shards.push_back(geometry.kv.extract(v, r, 2));
  }
  if (stats) stats->assign(static_cast<size_t>(ranks), RingStats{});
  for (int r = 0; r < ranks; ++r) {
    RingOptions ring;
    ring.flash = flash;
    RingRank local(geometry.q.extract(q, r, 2), geometry, r, options, ring);
    for (int step = 0; step < ranks; ++step) {
      const int source = ((r - step) % ranks + ranks) % ranks;
      local.attend(k_shards[static_cast<size_t>(source)], v_shards[static_cast<size_t>(source)], source);
    }
    Tensor out_shard =
        Tensor::empty(DType::F32, {shape.batch, shape.heads, geometry.q.shard_length(r), shape.value_dim});
    Tensor lse_shard;
    local.finish(out_shard, lse ? &lse_shard : nullptr);
    geometry.q.place(out_shard, r, out, 2);
    if (lse) geometry.q.place(lse_shard, r, *lse, 2);
    if (stats) (*stats)[static_cast<size_t>(r)] = local.stats();
  }
}

void ring_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                              const AttentionOptions& options, Tensor* lse) {
  standard_attention(q, k, v, out, options, lse);
}

}  // namespace attnc::distributed
