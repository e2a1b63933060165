#include "runtime/families/flash/FlashCpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuBlocks.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"
#include "runtime/families/flash/FlashCpuOperands.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "flash_attention";
constexpr int32_t BLOCK_M = kFlashBlockM;
constexpr int32_t BLOCK_N = kFlashBlockN;
// PARTIAL tiles are refined into bands of kBandRows rows and chunks of kBandCols columns (even, so
// bf16 pairs never straddle a chunk edge).
constexpr int32_t kBandRows = 16;
constexpr int32_t kBandCols = 16;
static_assert(BLOCK_M % kBandRows == 0 && kBandCols % 2 == 0);
using Band = flash_cpu::FlashOperands::Band;
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

void store_value(const Tensor& t, int64_t offset, float value) { cpu::store_row(t, offset, 1, 1, &value, 1.0f); }

// The micro-kernels a call runs: the ones FlashOptions names, else the best this CPU has.
const cpu::CpuMicroKernels& chosen_kernels(const FlashOptions& flash) {
  if (!flash.isa) return cpu::best_micro_kernels();
  const cpu::CpuMicroKernels* kernels = cpu::micro_kernels(*flash.isa);
  if (kernels == nullptr) {
    throw RuntimeError(fmt::format("{}: this CPU cannot run the {} micro-kernels", kFunction,
                                   cpu::cpu_isa_name(*flash.isa)));
  }
  return *kernels;
}

// A mod as the kernel runs it: the compiled program and the call's packed arguments.
struct PreparedMod {
  const Mod* mod = nullptr;
  std::shared_ptr<const CpuModProgram> program;
  CpuModArgs args;

  PreparedMod(const Mod& m, const AttentionOptions& options, CpuBackend backend)
      : mod(&m), args(CpuModArgs::pack(m, options.check_bounds)) {
    program = compile_cpu_program(m, backend);
  }
};

// The first out-of-range index seen, in (b, h, q_idx, kv_idx) order.
struct BoundsFailure {
  const Mod* mod = nullptr;
  CpuBoundsReport report;

  auto position() const { return std::tuple(report.b, report.h, report.q_idx, report.kv_idx); }
};

// Everything one worker touches per work item, allocated once per call.
struct Workspace {
  std::unique_ptr<flash_cpu::OperandScratch> operands;  // the query rows (and bf16 P) of the item
  cpu::AlignedBuffer<float> s, o, row_max, row_sum, row_alpha;
  FlashStats stats;
  std::optional<BoundsFailure> failure;

  Workspace(const flash_cpu::FlashOperands& ops, int64_t value_dim)
      : operands(ops.make_scratch()),
        s(BLOCK_M * BLOCK_N),
        o(BLOCK_M * std::max<int64_t>(value_dim, 1)),
        row_max(BLOCK_M),
        row_sum(BLOCK_M),
        row_alpha(BLOCK_M) {}
};

class FlashRun {
 public:
  FlashRun(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
           const AttentionShape& shape, const AttentionOptions& options, const FlashOptions& flash)
      : q_(q),
        k_(k),
        v_(v),
        out_(out),
        lse_(lse),
        shape_(shape),
        flash_(flash),
        kernels_(chosen_kernels(flash)),
        pool_(cpu::CpuThreadPool::shared()),
        q_offset_(options.q_offset) {
    if (options.score_mod) score_.emplace(*options.score_mod, options, flash.backend);
    if (options.mask_mod) mask_.emplace(*options.mask_mod, options, flash.backend);
    const float scale =
        options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    // exp2 is cheaper than exp. Without a score mod, log2(e) is folded into the scale on Q, so the
    // scores come out as base-2 exponents (a mask only writes -inf, which is -inf in either base).
    // A score mod must see the scaled natural score, so then the conversion is done in the softmax.
    if (score_) {
      q_multiplier_ = scale;
      exp2_factor_ = std::numbers::log2e_v<float>;
      lse_factor_ = 1.0f;
    } else {
      q_multiplier_ = scale * std::numbers::log2e_v<float>;
      exp2_factor_ = 1.0f;
      lse_factor_ = std::numbers::ln2_v<float>;
    }
    dropout_threshold_ = dropout_threshold(flash.dropout.rate);
    group_ = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
    q_tiles_ = (shape.q_len + BLOCK_M - 1) / BLOCK_M;
    kv_tiles_ = (shape.kv_len + BLOCK_N - 1) / BLOCK_N;
    operands_ = flash_cpu::make_flash_operands(q, k, v, flash_cpu::OperandShape{shape, BLOCK_M, BLOCK_N, q_multiplier_},
                                               kernels_, flash.allow_bf16);
  }

  void run() {
    const int64_t items = shape_.batch * shape_.heads * q_tiles_;
    if (items == 0) return;
    operands_->pack(pool_, flash_.num_threads);
    std::vector<int64_t> order = work_order(items);

    const int workers = pool_.workers_for(items, flash_.num_threads);
    std::vector<std::unique_ptr<Workspace>> spaces(static_cast<size_t>(workers));
    pool_.parallel_for(items, workers, [&](int worker, int64_t index) {
      auto& space = spaces[static_cast<size_t>(worker)];
      if (!space) space = std::make_unique<Workspace>(*operands_, shape_.value_dim);
      run_item(order[static_cast<size_t>(index)], *space);
    });

    FlashStats total;
    std::optional<BoundsFailure> failure;
    for (const auto& space : spaces) {
      if (!space) continue;
      total.tiles_computed += space->stats.tiles_computed;
      total.tiles_skipped += space->stats.tiles_skipped;
      total.tiles_full += space->stats.tiles_full;
      total.tiles_partial += space->stats.tiles_partial;
      if (space->failure && (!failure || space->failure->position() < failure->position())) failure = space->failure;
    }
    if (flash_.stats) *flash_.stats = total;
    if (failure) {
      const CpuBoundsReport& r = failure->report;
      throw RuntimeError(out_of_range_message(kFunction, *failure->mod, static_cast<uint32_t>(r.param), r.dim, r.index,
                                              r.extent, r.b, r.h, r.q_idx, r.kv_idx));
    }
  }

 private:
  // Work items (b, h, query tile) in the order they are handed out. Without a mask, the natural
  // order: the query tiles of one head, then the next head, so the K/V panels a worker reads are
  // those its neighbour just read (one head's K and V fit in L3, all heads' do not). With a mask,
  // items are grouped by the K/V head they read, the groups with the most non-EMPTY key tiles
  // first, and within a group the items with the most tiles first: the short items (early causal
  // rows, the first rows of a sliding window) then fill the gaps at the end instead of one long
  // item finishing alone, and the workers still share one group's K/V in cache. (Ordering all
  // items longest-first across heads made causal rows of eight heads interleave, and streamed
  // 8 heads' K/V from memory: causal took 0.56x the dense time instead of the 0.51x its tiles
  // need, measured at S=4096 D=128 fp32 on one thread.)
  std::vector<int64_t> work_order(int64_t items) {
    std::vector<int64_t> order(static_cast<size_t>(items));
    for (int64_t i = 0; i < items; ++i) order[static_cast<size_t>(i)] = i;
    if (!mask_ || kv_tiles_ == 0) return order;
    std::vector<int64_t> cost(static_cast<size_t>(items));
    pool_.parallel_for(items, flash_.num_threads, [&](int, int64_t item) {
      const Item it = item_at(item);
      int64_t count = 0;
      for (int64_t t = 0; t < kv_tiles_; ++t) count += classify(it, t) != ir::TileClass::Empty;
      cost[static_cast<size_t>(item)] = count;
    });
    // Items of one (b, K/V head) are contiguous: the query heads of a group are consecutive h.
    const int64_t per_group = group_ * q_tiles_;
    std::vector<int64_t> group_cost(static_cast<size_t>((items + per_group - 1) / per_group), 0);
    for (int64_t i = 0; i < items; ++i) group_cost[static_cast<size_t>(i / per_group)] += cost[static_cast<size_t>(i)];
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      const int64_t ga = a / per_group, gb = b / per_group;
      if (ga != gb) {
        const int64_t ca = group_cost[static_cast<size_t>(ga)], cb = group_cost[static_cast<size_t>(gb)];
        return ca != cb ? ca > cb : ga < gb;
      }
      return cost[static_cast<size_t>(a)] > cost[static_cast<size_t>(b)];
    });
    return order;
  }

  struct Item {
    int64_t b, h, g;
    int32_t q_first, rows;  // rows of q, out and lse
    int32_t q_pos;          // the mods' q_idx of row q_first: q_offset + q_first
    TilePosition at;
  };

  Item item_at(int64_t item) const {
    Item it;
    const int64_t qt = item % q_tiles_, bh = item / q_tiles_;
    it.b = bh / shape_.heads;
    it.h = bh % shape_.heads;
    it.g = it.h / group_;
    it.q_first = static_cast<int32_t>(qt * BLOCK_M);
    it.rows = static_cast<int32_t>(std::min<int64_t>(BLOCK_M, shape_.q_len - it.q_first));
    it.q_pos = q_offset_ + it.q_first;
    it.at.b = static_cast<int32_t>(it.b);
    it.at.h = static_cast<int32_t>(it.h);
    it.at.q_len = static_cast<int32_t>(shape_.q_len);
    it.at.kv_len = static_cast<int32_t>(shape_.kv_len);
    it.at.num_heads = static_cast<int32_t>(shape_.heads);
    it.at.num_kv_heads = static_cast<int32_t>(shape_.kv_heads);
    return it;
  }

  int32_t tile_cols(int64_t t) const {
    return static_cast<int32_t>(std::min<int64_t>(BLOCK_N, shape_.kv_len - t * BLOCK_N));
  }

  ir::TileClass classify(const Item& it, int64_t t) const {
    const auto kv_first = static_cast<int32_t>(t * BLOCK_N);
    return mask_->program->classify(it.q_pos, it.q_pos + it.rows - 1, kv_first, kv_first + tile_cols(t) - 1, it.at,
                                    mask_->args);
  }

  // Runs `mod` on the band of the tile in s; false (and the failure kept) when it reported an
  // out-of-range index.
  bool apply(const PreparedMod& mod, float* s, const Item& it, int32_t kv_first, Band band, Workspace& space) const {
    CpuBoundsReport report;
    mod.program->apply(s + band.row0 * BLOCK_N + band.lo, BLOCK_N, band.rows, band.hi - band.lo, it.q_pos + band.row0,
                       kv_first + band.lo, it.at, mod.args, &report);
    if (!report.failed) return true;
    BoundsFailure failure{mod.mod, report};
    if (!space.failure || failure.position() < space.failure->position()) space.failure = failure;
    return false;
  }

  // A PARTIAL tile cut into bands of kBandRows rows, each narrowed to the columns [lo, hi) outside
  // which the classifier proves it EMPTY (so its products there are never computed), and marked
  // `masked` unless every kBandCols-column chunk in between is FULL. The diagonal tile of a causal
  // mask so costs about half a tile, and a sliding window's edge tiles their band.
  struct MaskedBand {
    Band band;
    bool masked;
  };
  int32_t refine(const Item& it, int64_t t, int32_t cols, MaskedBand (&bands)[BLOCK_M / kBandRows]) const {
    const auto kv_first = static_cast<int32_t>(t * BLOCK_N);
    int32_t count = 0;
    for (int32_t row0 = 0; row0 < it.rows; row0 += kBandRows) {
      const int32_t rows = std::min(kBandRows, it.rows - row0);
      const int32_t q_first = it.q_pos + row0, q_last = q_first + rows - 1;
      int32_t lo = cols, hi = 0;
      bool masked = false, gap = false;
      for (int32_t c0 = 0; c0 < cols; c0 += kBandCols) {
        const int32_t c1 = std::min(c0 + kBandCols, cols);
        const ir::TileClass cls =
            mask_->program->classify(q_first, q_last, kv_first + c0, kv_first + c1 - 1, it.at, mask_->args);
        if (cls == ir::TileClass::Empty) {
          gap = gap || hi > 0;  // an EMPTY chunk after a kept one: inside [lo, hi) if more follow
          continue;
        }
        masked = masked || cls == ir::TileClass::Partial || (gap && hi > 0);
        lo = std::min(lo, c0);
        hi = c1;
        gap = false;
      }
      bands[count++] = MaskedBand{Band{row0, rows, lo < hi ? lo : 0, lo < hi ? hi : 0}, masked};
    }
    return count;
  }

  void run_item(int64_t item, Workspace& space) const {
    const Item it = item_at(item);
    const int64_t Dv = shape_.value_dim;
    float* s = space.s.get();
    float* o = space.o.get();
    float* row_max = space.row_max.get();
    float* row_sum = space.row_sum.get();
    float* row_alpha = space.row_alpha.get();
    operands_->load_q(*space.operands, it.b, it.h, it.q_first, it.rows);
    std::fill(row_max, row_max + it.rows, kMinusInf);
    std::fill(row_sum, row_sum + it.rows, 0.0f);
    std::fill(o, o + it.rows * Dv, 0.0f);

    for (int64_t t = 0; t < kv_tiles_; ++t) {
      const auto kv_first = static_cast<int32_t>(t * BLOCK_N);
      const int32_t cols = tile_cols(t);
      ir::TileClass cls = mask_ ? classify(it, t) : ir::TileClass::Full;
      if (cls == ir::TileClass::Empty) {
        ++space.stats.tiles_skipped;
        continue;
      }
      ++space.stats.tiles_computed;
      ++(cls == ir::TileClass::Full ? space.stats.tiles_full : space.stats.tiles_partial);

      MaskedBand bands[BLOCK_M / kBandRows];
      const int32_t band_count =
          cls == ir::TileClass::Full ? (bands[0] = {Band{0, it.rows, 0, cols}, false}, 1) : refine(it, t, cols, bands);
      for (int32_t i = 0; i < band_count; ++i) {
        const MaskedBand& m = bands[i];
        // Columns outside [lo, hi) are proven EMPTY: -inf, so their P is 0 and they add nothing.
        for (int32_t r = m.band.row0; r < m.band.row0 + m.band.rows; ++r) {
          std::fill(s + r * BLOCK_N, s + r * BLOCK_N + m.band.lo, kMinusInf);
          std::fill(s + r * BLOCK_N + m.band.hi, s + r * BLOCK_N + cols, kMinusInf);
        }
        if (m.band.lo == m.band.hi) continue;
        operands_->scores(*space.operands, it.b, it.g, t, m.band, s);
        if (score_ && !apply(*score_, s, it, kv_first, m.band, space)) return;
        if (m.masked && !apply(*mask_, s, it, kv_first, m.band, space)) return;
      }
      kernels_.softmax_tile(s, BLOCK_N, it.rows, cols, exp2_factor_, row_max, row_sum, row_alpha);
      kernels_.scale_rows(o, Dv, it.rows, static_cast<int32_t>(Dv), row_alpha);
      // Dropout after the row sums took the whole P: the normaliser is the undropped one.
      if (flash_.dropout.enabled()) drop(s, it, kv_first, cols);
      for (int32_t i = 0; i < band_count; ++i) {
        if (bands[i].band.lo < bands[i].band.hi) operands_->accumulate(*space.operands, it.b, it.g, t, bands[i].band, s, o);
      }
    }

    const auto& os = out_.strides();
    for (int32_t r = 0; r < it.rows; ++r) {
      const int64_t i = it.q_first + r;
      // A row that kept no key (max still -inf) gives 0 and LSE -inf; 0 / 0 would give NaN.
      const bool empty = row_max[r] == kMinusInf;
      const float inverse = empty ? 0.0f : 1.0f / row_sum[r];
      cpu::store_row(out_, it.b * os[0] + it.h * os[1] + i * os[2], os[3], Dv, o + r * Dv, inverse);
      if (lse_) {
        const auto& ls = lse_->strides();
        const float value = empty ? kMinusInf : row_max[r] * lse_factor_ + std::log(row_sum[r]);
        store_value(*lse_, it.b * ls[0] + it.h * ls[1] + i * ls[2], value);
      }
    }
  }

  // P *= M / (1 - rate) on a tile (a 0 stays 0 whatever the draw).
  void drop(float* s, const Item& it, int32_t kv_first, int32_t cols) const {
    uint64_t keep[BLOCK_M];
    kernels_.dropout_keep_bits(dropout_threshold_, flash_.dropout.seed, static_cast<int32_t>(it.b),
                               static_cast<int32_t>(it.h), it.q_pos, it.rows, kv_first, cols, keep);
    kernels_.dropout_apply(s, s, BLOCK_N, it.rows, cols, keep, flash_.dropout.keep_scale());
  }

  const Tensor &q_, &k_, &v_, &out_;
  const Tensor* lse_;
  AttentionShape shape_;
  FlashOptions flash_;
  const cpu::CpuMicroKernels& kernels_;
  cpu::CpuThreadPool& pool_;
  std::optional<PreparedMod> score_, mask_;
  int32_t q_offset_ = 0;
  uint32_t dropout_threshold_ = 0;
  float q_multiplier_ = 1, exp2_factor_ = 1, lse_factor_ = 1;
  int64_t group_ = 1, q_tiles_ = 0, kv_tiles_ = 0;
  std::unique_ptr<flash_cpu::FlashOperands> operands_;
};

}  // namespace

const char* flash_cpu_precision(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& flash) {
  return flash_cpu::uses_bf16_products(q, k, v, chosen_kernels(flash), flash.allow_bf16) ? "bf16" : "fp32";
}

void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                     const FlashOptions& flash, Tensor* lse) {
  const AttentionShape shape = check_attention_args(kFunction, q, k, v, out, options, lse);
  check_dropout(kFunction, flash.dropout);
  FlashRun(q, k, v, out, lse, shape, options, flash).run();
}

void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionOptions& options,
                     Tensor* lse) {
  flash_attention(q, k, v, out, options, FlashOptions{}, lse);
}

Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options,
                       Tensor* lse) {
  check_attention_inputs(kFunction, q, v);
  Tensor out = Tensor::empty(DType::F32, {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]});
  flash_attention(q, k, v, out, options, lse);
  return out;
}

}  // namespace attnc
