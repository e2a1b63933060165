#include "runtime/families/memory_efficient/MemoryEfficientCpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuBlocks.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "memory_efficient_attention";
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// A mod as the kernel runs it: the compiled program and the call's packed arguments.
struct PreparedMod {
  const Mod* mod;
  std::shared_ptr<const CpuModProgram> program;
  CpuModArgs args;
};

struct BoundsFailure {
  const Mod* mod = nullptr;
  CpuBoundsReport report;
  auto position() const { return std::tuple(report.b, report.h, report.q_idx, report.kv_idx); }
};

// One worker's blocks, allocated once per call.
struct Workspace {
  cpu::AlignedBuffer<float> q, kt, v, s, o, row_max, row_sum, row_alpha;
  BlockwiseStats stats;
  std::optional<BoundsFailure> failure;

  Workspace(int64_t block, int64_t head_dim, int64_t value_dim)
      : q(block * head_dim),
        kt(head_dim * block),
        v(block * std::max<int64_t>(value_dim, 1)),
        s(block * block),
        o(block * std::max<int64_t>(value_dim, 1)),
        row_max(block),
        row_sum(block),
        row_alpha(block) {}
};

class BlockwiseRun {
 public:
  BlockwiseRun(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
               const AttentionShape& shape, const AttentionOptions& options, const BlockwiseOptions& blockwise)
      : q_(q),
        k_(k),
        v_(v),
        out_(out),
        lse_(lse),
        shape_(shape),
        blockwise_(blockwise),
        kernels_(cpu::best_micro_kernels()),
        pool_(cpu::CpuThreadPool::shared()),
        block_(blockwise.block_size),
        q_offset_(options.q_offset) {
    auto prepare = [&](const Mod* mod) -> std::optional<PreparedMod> {
      if (mod == nullptr) return std::nullopt;
      return PreparedMod{mod, compile_cpu_program(*mod, blockwise.backend),
                         CpuModArgs::pack(*mod, options.check_bounds)};
    };
    score_ = prepare(options.score_mod);
    mask_ = prepare(options.mask_mod);
    const float scale =
        options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    // Base-2 exponents, as in the flash kernel: log2(e) folded into Q unless a score mod must see
    // the natural scaled score, in which case the softmax step converts.
    q_multiplier_ = score_ ? scale : scale * std::numbers::log2e_v<float>;
    exp2_factor_ = score_ ? std::numbers::log2e_v<float> : 1.0f;
    lse_factor_ = score_ ? 1.0f : std::numbers::ln2_v<float>;
    group_ = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
    q_blocks_ = (shape.q_len + block_ - 1) / block_;
    kv_blocks_ = (shape.kv_len + block_ - 1) / block_;
  }

  void run() {
    const int64_t items = shape_.batch * shape_.heads * q_blocks_;
    if (items == 0) return;
    const std::vector<int64_t> order = work_order(items);
    const int workers = pool_.workers_for(items, blockwise_.num_threads);
    std::vector<std::unique_ptr<Workspace>> spaces(static_cast<size_t>(workers));
    pool_.parallel_for(items, workers, [&](int worker, int64_t index) {
      auto& space = spaces[static_cast<size_t>(worker)];
      if (!space) space = std::make_unique<Workspace>(block_, shape_.head_dim, shape_.value_dim);
      run_item(order[static_cast<size_t>(index)], *space);
    });

    BlockwiseStats total;
    std::optional<BoundsFailure> failure;
    for (const auto& space : spaces) {
      if (!space) continue;
      total.blocks_computed += space->stats.blocks_computed;
      total.blocks_skipped += space->stats.blocks_skipped;
      total.blocks_full += space->stats.blocks_full;
      total.blocks_partial += space->stats.blocks_partial;
      if (space->failure && (!failure || space->failure->position() < failure->position())) failure = space->failure;
    }
    if (blockwise_.stats) *blockwise_.stats = total;
    if (failure) {
      const CpuBoundsReport& r = failure->report;
      throw RuntimeError(out_of_range_message(kFunction, *failure->mod, static_cast<uint32_t>(r.param), r.dim, r.index,
                                              r.extent, r.b, r.h, r.q_idx, r.kv_idx));
    }
  }

 private:
  struct Item {
    int64_t b, h, g;
    int32_t q_first, rows, q_pos;  // q_pos: the mods' q_idx of row q_first
    TilePosition at;
  };

  Item item_at(int64_t item) const {
    Item it;
    const int64_t qb = item % q_blocks_, bh = item / q_blocks_;
    it.b = bh / shape_.heads;
    it.h = bh % shape_.heads;
    it.g = it.h / group_;
    it.q_first = static_cast<int32_t>(qb * block_);
    it.rows = static_cast<int32_t>(std::min<int64_t>(block_, shape_.q_len - it.q_first));
    it.q_pos = q_offset_ + it.q_first;
    it.at = TilePosition{static_cast<int32_t>(it.b),         static_cast<int32_t>(it.h),
                         static_cast<int32_t>(shape_.q_len), static_cast<int32_t>(shape_.kv_len),
                         static_cast<int32_t>(shape_.heads), static_cast<int32_t>(shape_.kv_heads)};
    return it;
  }

  int32_t block_cols(int64_t t) const {
    return static_cast<int32_t>(std::min<int64_t>(block_, shape_.kv_len - t * block_));
  }

  ir::TileClass classify(const Item& it, int64_t t) const {
    const auto kv_first = static_cast<int32_t>(t * block_);
    return mask_->program->classify(it.q_pos, it.q_pos + it.rows - 1, kv_first, kv_first + block_cols(t) - 1, it.at,
                                    mask_->args);
  }

  // With a mask, the items with the most non-EMPTY key blocks go first, so short ones fill the end.
  std::vector<int64_t> work_order(int64_t items) {
    std::vector<int64_t> order(static_cast<size_t>(items));
    for (int64_t i = 0; i < items; ++i) order[static_cast<size_t>(i)] = i;
    if (!mask_ || kv_blocks_ == 0) return order;
    std::vector<int64_t> cost(static_cast<size_t>(items));
    pool_.parallel_for(items, blockwise_.num_threads, [&](int, int64_t item) {
      const Item it = item_at(item);
      int64_t count = 0;
      for (int64_t t = 0; t < kv_blocks_; ++t) count += classify(it, t) != ir::TileClass::Empty;
      cost[static_cast<size_t>(item)] = count;
    });
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return cost[static_cast<size_t>(a)] > cost[static_cast<size_t>(b)]; });
    return order;
  }

  // Runs `mod` on the block's scores; false (and the failure kept) for an out-of-range index.
  bool apply(const PreparedMod& mod, float* s, const Item& it, int32_t kv_first, int32_t cols, Workspace& space) const {
    CpuBoundsReport report;
    mod.program->apply(s, block_, it.rows, cols, it.q_pos, kv_first, it.at, mod.args, &report);
    if (!report.failed) return true;
    BoundsFailure failure{mod.mod, report};
    if (!space.failure || failure.position() < space.failure->position()) space.failure = failure;
    return false;
  }

  void run_item(int64_t item, Workspace& space) const {
    const Item it = item_at(item);
    const int64_t D = shape_.head_dim, Dv = shape_.value_dim;
    float* s = space.s.get();
    float* o = space.o.get();
    float* row_max = space.row_max.get();
    float* row_sum = space.row_sum.get();
    float* row_alpha = space.row_alpha.get();
    const auto& qs = q_.strides();
    const auto& ks = k_.strides();
    const auto& vs = v_.strides();
    cpu::load_block(q_, it.b * qs[0] + it.h * qs[1] + it.q_first * qs[2], qs[2], qs[3], it.rows,
                    static_cast<int32_t>(D), space.q.get(), D, q_multiplier_, false);
    std::fill(row_max, row_max + it.rows, kMinusInf);
    std::fill(row_sum, row_sum + it.rows, 0.0f);
    std::fill(o, o + it.rows * Dv, 0.0f);

    for (int64_t t = 0; t < kv_blocks_; ++t) {
      const auto kv_first = static_cast<int32_t>(t * block_);
      const int32_t cols = block_cols(t);
      const ir::TileClass cls = mask_ ? classify(it, t) : ir::TileClass::Full;
      if (cls == ir::TileClass::Empty) {
        ++space.stats.blocks_skipped;
        continue;
      }
      ++space.stats.blocks_computed;
      ++(cls == ir::TileClass::Full ? space.stats.blocks_full : space.stats.blocks_partial);

      // K^T (D x cols) and V (cols x Dv) of the block, in fp32.
      cpu::load_block(k_, it.b * ks[0] + it.g * ks[1] + kv_first * ks[2], ks[2], ks[3], cols, static_cast<int32_t>(D),
                      space.kt.get(), block_, 1.0f, true);
      cpu::load_block(v_, it.b * vs[0] + it.g * vs[1] + kv_first * vs[2], vs[2], vs[3], cols, static_cast<int32_t>(Dv),
                      space.v.get(), Dv, 1.0f, false);
      kernels_.gemm(it.rows, cols, static_cast<int32_t>(D), space.q.get(), D, space.kt.get(), block_, s, block_, false);
      if (score_ && !apply(*score_, s, it, kv_first, cols, space)) return;
      if (cls == ir::TileClass::Partial && !apply(*mask_, s, it, kv_first, cols, space)) return;
      kernels_.softmax_tile(s, block_, it.rows, cols, exp2_factor_, row_max, row_sum, row_alpha);
      kernels_.scale_rows(o, Dv, it.rows, static_cast<int32_t>(Dv), row_alpha);
      kernels_.gemm(it.rows, static_cast<int32_t>(Dv), cols, s, block_, space.v.get(), Dv, o, Dv, true);
    }

    const auto& os = out_.strides();
    for (int32_t r = 0; r < it.rows; ++r) {
      const int64_t i = it.q_first + r;
      // A row that kept no key (max still -inf) gives 0 and LSE -inf; 0 / 0 would give NaN.
      const bool empty = row_max[r] == kMinusInf;
      const float inverse = empty ? 0.0f : 1.0f / row_sum[r];
      const int64_t base = it.b * os[0] + it.h * os[1] + i * os[2];
      cpu::store_row(out_, base, os[3], Dv, o + r * Dv, inverse);
      if (lse_) {
        const auto& ls = lse_->strides();
        const float value = empty ? kMinusInf : row_max[r] * lse_factor_ + std::log(row_sum[r]);
        cpu::store_row(*lse_, it.b * ls[0] + it.h * ls[1] + i * ls[2], 1, 1, &value);
      }
    }
  }

  const Tensor &q_, &k_, &v_, &out_;
  const Tensor* lse_;
  AttentionShape shape_;
  BlockwiseOptions blockwise_;
  const cpu::CpuMicroKernels& kernels_;
  cpu::CpuThreadPool& pool_;
  int64_t block_;
  int32_t q_offset_;
  std::optional<PreparedMod> score_, mask_;
  float q_multiplier_ = 1, exp2_factor_ = 1, lse_factor_ = 1;
  int64_t group_ = 1, q_blocks_ = 0, kv_blocks_ = 0;
};

}  // namespace

void memory_efficient_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                                const AttentionOptions& options, const BlockwiseOptions& blockwise, Tensor* lse) {
  const AttentionShape shape = check_attention_args(kFunction, q, k, v, out, options, lse);
  if (blockwise.block_size < 1) {
    throw RuntimeError(fmt::format("{}: block_size must be at least 1, not {}", kFunction, blockwise.block_size));
  }
  BlockwiseRun(q, k, v, out, lse, shape, options, blockwise).run();
}

Tensor memory_efficient_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                  const AttentionOptions& options, int block_size) {
  check_attention_inputs(kFunction, q, v);
  Tensor out = Tensor::empty(DType::F32, attention_out_shape(q, v));
  BlockwiseOptions blockwise;
  blockwise.block_size = block_size;
  memory_efficient_attention(q, k, v, out, with_mask(options, mask), blockwise);
  return out;
}

}  // namespace attnc
