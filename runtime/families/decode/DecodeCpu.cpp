#include "runtime/families/decode/DecodeCpu.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <tuple>
#include <vector>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuBlocks.h"
#include "runtime/cpu/CpuThreadPool.h"
#include "runtime/families/decode/DecodeConfig.h"
#include "runtime/families/decode/DecodeCpuKernels.h"

namespace attnc::decode {

namespace {

constexpr const char* kFunction = "decode_attention";
constexpr int32_t BLOCK_N = kDecodeBlockN;
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

using FloatBuffer = cpu::AlignedBuffer<float>;

// A mod as the kernel runs it: the compiled program and the call's packed arguments.
struct PreparedMod {
  const Mod* mod = nullptr;
  std::shared_ptr<const CpuModProgram> program;
  CpuModArgs args;

  PreparedMod(const Mod& m, const AttentionOptions& options, CpuBackend backend)
      : mod(&m), program(compile_cpu_program(m, backend)), args(CpuModArgs::pack(m, options.check_bounds)) {}
};

struct BoundsFailure {
  const Mod* mod = nullptr;
  CpuBoundsReport report;
  auto position() const { return std::tuple(report.b, report.h, report.q_idx, report.kv_idx); }
};

// A worker's scratch, allocated once per call.
struct Workspace {
  FloatBuffer q, k, v, s, o, row_max, row_sum, row_alpha;
  std::vector<const void*> k_rows, v_rows;  // the current tile's K and V rows, read in place
  std::vector<const void*> ahead;           // the next tile's K or V rows, for prefetching
  std::vector<uint16_t> q_bf16;             // the unscaled query rows, for scores_bf16
  std::vector<ir::TileClass> classes;
  int64_t tiles_computed = 0, tiles_skipped = 0;
  std::optional<BoundsFailure> failure;

  Workspace(int64_t rows, int64_t group, int64_t head_dim, int64_t value_dim)
      : q(rows * head_dim),
        k(BLOCK_N * head_dim),
        v(BLOCK_N * std::max<int64_t>(value_dim, 1)),
        s(rows * BLOCK_N),
        o(rows * std::max<int64_t>(value_dim, 1)),
        row_max(rows),
        row_sum(rows),
        row_alpha(rows),
        k_rows(BLOCK_N),
        v_rows(BLOCK_N),
        ahead(BLOCK_N),
        q_bf16(static_cast<size_t>(rows * head_dim)),
        classes(static_cast<size_t>(group)) {}
};

class DecodeRun {
 public:
  DecodeRun(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out, const Tensor* lse,
            const AttentionShape& shape, const AttentionOptions& options, const DecodeCpuOptions& decode)
      : q_(q),
        kv_(kv),
        rows_(rows),
        out_(out),
        lse_(lse),
        shape_(shape),
        decode_(decode),
        kernels_(decode.force_scalar ? scalar_decode_kernels() : best_decode_kernels()),
        pool_(cpu::CpuThreadPool::shared()) {
    if (options.score_mod) score_.emplace(*options.score_mod, options, decode.backend);
    if (options.mask_mod) mask_.emplace(*options.mask_mod, options, decode.backend);
    const float scale =
        options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    // As in the flash kernel: without a score mod log2(e) is folded into Q, so scores are base-2
    // exponents; a score mod must see the natural scaled score, so the softmax converts instead.
    q_multiplier_ = score_ ? scale : scale * std::numbers::log2e_v<float>;
    exp2_factor_ = score_ ? std::numbers::log2e_v<float> : 1.0f;
    // bf16 q and K on a CPU with AVX512-BF16: the scores multiply the inputs' own bf16 values
    // exactly (VDPBF16PS) and scale afterwards, instead of converting K and a scaled fp32 Q.
    bf16_scores_ = kernels_.scores_bf16 != nullptr && q.dtype() == DType::BF16 && kv.k.dtype() == DType::BF16 &&
                   kv.k.stride(3) == 1;
    group_ = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
    group_rows_ = group_ * shape.q_len;
    if (kv.paged()) {
      table_ = static_cast<const int32_t*>(kv.block_table.data());
      // Page sizes are powers of two (check_kv_source_args): a shift and a mask per key instead of
      // two 64-bit divisions, which cost as much as the key's arithmetic.
      page_shift_ = std::countr_zero(static_cast<uint32_t>(kv.page_size));
      table_stride_ = kv.block_table.stride(0);
    }
  }

  void run() {
    const int64_t units = shape_.batch * shape_.kv_heads;
    if (units == 0 || shape_.q_len == 0) return;
    const int workers = pool_.workers_for(units * kMaxSplits, decode_.num_threads);
    splits_ = decode_.num_splits > 0
                  ? decode_.num_splits
                  : choose_num_splits(units, shape_.kv_len, workers, kCpuMinKeysPerSplit, kMaxSplits);
    find_live_ranges();
    if (splits_ > 1) {
      const int64_t partial_rows = shape_.batch * shape_.heads * shape_.q_len * splits_;
      partial_out_ = FloatBuffer(static_cast<size_t>(partial_rows * std::max<int64_t>(shape_.value_dim, 1)));
      partial_lse_ = FloatBuffer(static_cast<size_t>(partial_rows));
    }

    const int64_t items = units * splits_;
    std::vector<std::unique_ptr<Workspace>> spaces(static_cast<size_t>(pool_.workers_for(items, decode_.num_threads)));
    pool_.parallel_for(items, static_cast<int>(spaces.size()), [&](int worker, int64_t item) {
      auto& space = spaces[static_cast<size_t>(worker)];
      if (!space) space = std::make_unique<Workspace>(group_rows_, group_, shape_.head_dim, shape_.value_dim);
      run_item(item, *space);
    });

    std::optional<BoundsFailure> failure;
    DecodeCpuStats stats;
    stats.num_splits = splits_;
    stats.kernels = kernels_.name;
    for (const auto& space : spaces) {
      if (!space) continue;
      stats.tiles_computed += space->tiles_computed;
      stats.tiles_skipped += space->tiles_skipped;
      if (space->failure && (!failure || space->failure->position() < failure->position())) failure = space->failure;
    }
    if (decode_.stats) *decode_.stats = stats;
    if (failure) {
      const CpuBoundsReport& r = failure->report;
      throw RuntimeError(out_of_range_message(kFunction, *failure->mod, static_cast<uint32_t>(r.param), r.dim, r.index,
                                              r.extent, r.b, r.h, r.q_idx, r.kv_idx));
    }
    if (splits_ > 1) merge();
  }

 private:
  TilePosition position(int64_t b, int64_t h) const {
    TilePosition at;
    at.b = static_cast<int32_t>(b);
    at.h = static_cast<int32_t>(h);
    at.q_len = static_cast<int32_t>(shape_.q_len);
    at.kv_len = rows_[static_cast<size_t>(b)].kv_len;
    at.num_heads = static_cast<int32_t>(shape_.heads);
    at.num_kv_heads = static_cast<int32_t>(shape_.kv_heads);
    return at;
  }

  int32_t tile_cols(const KvBatchRow& row, int64_t tile) const {
    return static_cast<int32_t>(std::min<int64_t>(BLOCK_N, row.kv_len - tile * BLOCK_N));
  }

  // The class of key tile `tile` of batch row b for query head h.
  ir::TileClass classify(int64_t b, int64_t h, int64_t tile) const {
    const KvBatchRow& row = rows_[static_cast<size_t>(b)];
    const auto kv_first = static_cast<int32_t>(tile * BLOCK_N);
    return mask_->program->classify(row.q_offset, row.q_offset + static_cast<int32_t>(shape_.q_len) - 1, kv_first,
                                    kv_first + tile_cols(row, tile) - 1, position(b, h), mask_->args);
  }

  // For each (b, g), its first and last tiles with a non-EMPTY class for some head of the group.
  void find_live_ranges() {
    const int64_t units = shape_.batch * shape_.kv_heads;
    live_.assign(static_cast<size_t>(units), {0, -1});
    pool_.parallel_for(units, decode_.num_threads, [&](int, int64_t unit) {
      const int64_t b = unit / shape_.kv_heads, g = unit % shape_.kv_heads;
      const int64_t tiles = (rows_[static_cast<size_t>(b)].kv_len + BLOCK_N - 1) / BLOCK_N;
      std::pair<int64_t, int64_t> range{0, tiles - 1};
      if (mask_) {
        auto live = [&](int64_t t) {
          for (int64_t hh = 0; hh < group_; ++hh) {
            if (classify(b, g * group_ + hh, t) != ir::TileClass::Empty) return true;
          }
          return false;
        };
        int64_t lo = tiles, hi = -1;
        for (int64_t t = 0; t < tiles && lo == tiles; ++t) {
          if (live(t)) lo = t;
        }
        for (int64_t t = tiles - 1; t >= lo && hi < 0; --t) {
          if (live(t)) hi = t;
        }
        range = lo < tiles ? std::pair<int64_t, int64_t>{lo, hi} : std::pair<int64_t, int64_t>{0, -1};
      }
      live_[static_cast<size_t>(unit)] = range;
    });
  }

  // Runs `mod` on rows of the score tile; false (and the failure kept) on an out-of-range index.
  bool apply(const PreparedMod& mod, float* s, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
             const TilePosition& at, Workspace& space) const {
    CpuBoundsReport report;
    mod.program->apply(s, BLOCK_N, rows, cols, q_first, kv_first, at, mod.args, &report);
    if (!report.failed) return true;
    BoundsFailure failure{mod.mod, report};
    if (!space.failure || failure.position() < space.failure->position()) space.failure = failure;
    return false;
  }

  // rows[j] = the address of key kv_first + j of KV row `row`, head g, in t, for j < cols (through
  // the block table when paged), then the last one repeated up to `count`. Addresses advance by the
  // key stride within a page, so a page's rows cost an add each: this runs for every key of every
  // tile, twice (K, V) and again for the next tile's prefetch, and a multiply-heavy offset per key
  // measured a fifth of the decode time with the K/V in cache.
  void fill_rows(const Tensor& t, const KvBatchRow& row, int64_t g, int32_t kv_first, int32_t cols, int32_t count,
                 const void** rows) const {
    const auto& st = t.strides();
    const auto element = static_cast<int64_t>(dtype_size(t.dtype()));
    const auto* base = static_cast<const unsigned char*>(t.data());
    const int64_t step = st[2] * element;
    int32_t j = 0;
    while (j < cols) {
      const int64_t key = kv_first + j;
      int64_t page = row.kv_row, at = key, run = cols - j;
      if (table_ != nullptr) {
        page = table_[row.kv_row * table_stride_ + (key >> page_shift_)];
        at = key & ((int64_t{1} << page_shift_) - 1);
        run = std::min<int64_t>(run, (int64_t{1} << page_shift_) - at);
      }
      const unsigned char* p = base + (page * st[0] + g * st[1] + at * st[2]) * element;
      for (int64_t i = 0; i < run; ++i, p += step) rows[j + i] = p;
      j += static_cast<int32_t>(run);
    }
    for (; j < count; ++j) rows[j] = rows[cols - 1];
  }

  // Pointers to key (or value) rows kv_first .. kv_first + cols - 1 of KV row `row`, head g, read in
  // place (through the block table when paged); the returned dtype is what they hold. Rows whose head
  // dim is strided are converted into `buffer` first (fp32), so the kernels always see contiguous rows.
  DType row_pointers(const Tensor& t, const KvBatchRow& row, int64_t g, int32_t kv_first, int32_t cols, int64_t dim,
                     float* buffer, const void** rows) const {
    fill_rows(t, row, g, kv_first, cols, cols, rows);
    if (t.stride(3) == 1 || dim == 1) return t.dtype();
    const auto element = static_cast<int64_t>(dtype_size(t.dtype()));
    for (int32_t j = 0; j < cols; ++j) {
      const int64_t offset = (static_cast<const unsigned char*>(rows[j]) - static_cast<const unsigned char*>(t.data())) / element;
      float* out = buffer + j * dim;
      for (int64_t d = 0; d < dim; ++d) out[d] = load_as_float(t.data(), t.dtype(), offset + d * t.stride(3));
      rows[j] = out;
    }
    return DType::F32;
  }

  // The rows of key tile `tile` for the kernels' prefetching (DecodeCpuKernels.h), `count` of them
  // (the last repeated past the tile's end); null when there is no such tile or its rows are not
  // contiguous (strided rows are converted, not read in place).
  const void* const* ahead_rows(const Tensor& t, const KvBatchRow& row, int64_t g, int64_t tile, int32_t count,
                                int64_t dim, const void** rows) const {
    if (tile * BLOCK_N >= row.kv_len || (t.stride(3) != 1 && dim != 1)) return nullptr;
    fill_rows(t, row, g, static_cast<int32_t>(tile * BLOCK_N), tile_cols(row, tile), count, rows);
    return rows;
  }

  void run_item(int64_t item, Workspace& space) const {
    const int64_t split = item % splits_, unit = item / splits_;
    const int64_t b = unit / shape_.kv_heads, g = unit % shape_.kv_heads;
    const KvBatchRow& row = rows_[static_cast<size_t>(b)];
    const int64_t D = shape_.head_dim, Dv = shape_.value_dim, Q = shape_.q_len, R = group_rows_;
    const auto [first, last] = live_[static_cast<size_t>(unit)];
    const int64_t live = std::max<int64_t>(0, last - first + 1);
    const int64_t begin = first + live * split / splits_, end = first + live * (split + 1) / splits_;

    float* q_rows = space.q.get();
    float* s = space.s.get();
    float* o = space.o.get();
    float* row_max = space.row_max.get();
    float* row_sum = space.row_sum.get();
    float* row_alpha = space.row_alpha.get();
    const auto& qs = q_.strides();
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = g * group_ + r / Q, i = r % Q;
      const int64_t offset = b * qs[0] + h * qs[1] + i * qs[2];
      for (int64_t d = 0; d < D; ++d) {
        if (bf16_scores_) {
          space.q_bf16[static_cast<size_t>(r * D + d)] = static_cast<const uint16_t*>(q_.data())[offset + d * qs[3]];
        } else {
          q_rows[r * D + d] = q_multiplier_ * load_as_float(q_.data(), q_.dtype(), offset + d * qs[3]);
        }
      }
    }
    std::fill(row_max, row_max + R, kMinusInf);
    std::fill(row_sum, row_sum + R, 0.0f);
    std::fill(o, o + R * Dv, 0.0f);

    for (int64_t t = begin; t < end; ++t) {
      bool any = !mask_;
      if (mask_) {
        for (int64_t hh = 0; hh < group_; ++hh) {
          space.classes[static_cast<size_t>(hh)] = classify(b, g * group_ + hh, t);
          any = any || space.classes[static_cast<size_t>(hh)] != ir::TileClass::Empty;
        }
      }
      if (!any) {
        ++space.tiles_skipped;
        continue;
      }
      ++space.tiles_computed;
      const auto kv_first = static_cast<int32_t>(t * BLOCK_N);
      const int32_t cols = tile_cols(row, t);
      const DType k_type = row_pointers(kv_.k, row, g, kv_first, cols, D, space.k.get(), space.k_rows.data());
      // The next tile is prefetched whatever its class: finding the next live one would classify
      // ahead, and an EMPTY tile between live ones is rare (documents) and costs one tile of reads.
      const void* const* k_ahead = t + 1 < end ? ahead_rows(kv_.k, row, g, t + 1, cols, D, space.ahead.data()) : nullptr;
      if (bf16_scores_) {
        kernels_.scores_bf16(space.q_bf16.data(), D, space.k_rows.data(), static_cast<int32_t>(R), cols,
                             static_cast<int32_t>(D), q_multiplier_, s, BLOCK_N, k_ahead);
      } else {
        kernels_.scores(q_rows, D, space.k_rows.data(), k_type, static_cast<int32_t>(R), cols, static_cast<int32_t>(D),
                        s, BLOCK_N, k_ahead);
      }
      for (int64_t hh = 0; hh < group_; ++hh) {
        float* head_s = s + hh * Q * BLOCK_N;
        const ir::TileClass cls = mask_ ? space.classes[static_cast<size_t>(hh)] : ir::TileClass::Full;
        if (cls == ir::TileClass::Empty) {
          for (int64_t i = 0; i < Q; ++i) std::fill(head_s + i * BLOCK_N, head_s + i * BLOCK_N + cols, kMinusInf);
          continue;
        }
        const TilePosition at = position(b, g * group_ + hh);
        if (score_ && !apply(*score_, head_s, static_cast<int32_t>(Q), cols, row.q_offset, kv_first, at, space)) return;
        if (cls == ir::TileClass::Partial &&
            !apply(*mask_, head_s, static_cast<int32_t>(Q), cols, row.q_offset, kv_first, at, space)) {
          return;
        }
      }
      kernels_.softmax(s, BLOCK_N, static_cast<int32_t>(R), cols, exp2_factor_, row_max, row_sum, row_alpha);
      const DType v_type = row_pointers(kv_.v, row, g, kv_first, cols, Dv, space.v.get(), space.v_rows.data());
      const void* const* v_ahead = t + 1 < end ? ahead_rows(kv_.v, row, g, t + 1, cols, Dv, space.ahead.data()) : nullptr;
      if (v_type == DType::BF16 && kernels_.accumulate_bf16 != nullptr) {
        kernels_.accumulate_bf16(s, BLOCK_N, space.v_rows.data(), static_cast<int32_t>(R), cols,
                                 static_cast<int32_t>(Dv), row_alpha, o, Dv, v_ahead);
      } else {
        kernels_.accumulate(s, BLOCK_N, space.v_rows.data(), v_type, static_cast<int32_t>(R), cols,
                            static_cast<int32_t>(Dv), row_alpha, o, Dv, v_ahead);
      }
    }

    // LSE = ln(sum_j 2^(x_j c)) = m c ln 2 + ln l.
    const float lse_factor = exp2_factor_ * std::numbers::ln2_v<float>;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = g * group_ + r / Q, i = r % Q;
      // l is 0 exactly when the row kept no finite score; NaN stays NaN.
      const bool empty = row_sum[r] == 0.0f;
      const float inverse = empty ? 0.0f : 1.0f / row_sum[r];
      const float lse = empty ? kMinusInf : row_max[r] * lse_factor + std::log(row_sum[r]);
      if (splits_ == 1) {
        const auto& os = out_.strides();
        cpu::store_row(out_, b * os[0] + h * os[1] + i * os[2], os[3], Dv, o + r * Dv, inverse);
        if (lse_) {
          const auto& ls = lse_->strides();
          cpu::store_row(*lse_, b * ls[0] + h * ls[1] + i * ls[2], 1, 1, &lse, 1.0f);
        }
      } else {
        const int64_t partial = ((b * shape_.heads + h) * Q + i) * splits_ + split;
        float* dst = partial_out_.get() + partial * Dv;
        for (int64_t d = 0; d < Dv; ++d) dst[d] = o[r * Dv + d] * inverse;
        partial_lse_.get()[partial] = lse;
      }
    }
  }

  // out = sum_s exp(lse_s - lse) O_s with lse = ln sum_s exp(lse_s); splits with lse -inf weigh 0, a
  // NaN partial makes the row NaN.
  void merge() const {
    const int64_t rows = shape_.batch * shape_.heads * shape_.q_len;
    const int64_t Dv = shape_.value_dim;
    pool_.parallel_for(rows, decode_.num_threads, [&](int, int64_t index) {
      const float* lse_of = partial_lse_.get() + index * splits_;
      float max = kMinusInf;
      bool nan = false;
      for (int s = 0; s < splits_; ++s) {
        nan = nan || std::isnan(lse_of[s]);
        max = std::max(max, lse_of[s]);
      }
      std::vector<float> o(static_cast<size_t>(Dv), 0.0f);
      float lse = kMinusInf;
      if (nan) {
        lse = std::numeric_limits<float>::quiet_NaN();
        std::fill(o.begin(), o.end(), lse);
      } else if (max != kMinusInf) {
        double sum = 0;
        for (int s = 0; s < splits_; ++s) sum += lse_of[s] == kMinusInf ? 0.0 : std::exp(double(lse_of[s]) - max);
        lse = static_cast<float>(max + std::log(sum));
        for (int s = 0; s < splits_; ++s) {
          if (lse_of[s] == kMinusInf) continue;
          const float weight = static_cast<float>(std::exp(double(lse_of[s]) - lse));
          const float* part = partial_out_.get() + (index * splits_ + s) * Dv;
          for (int64_t d = 0; d < Dv; ++d) o[static_cast<size_t>(d)] += weight * part[d];
        }
      }
      const int64_t i = index % shape_.q_len, h = index / shape_.q_len % shape_.heads,
                    b = index / shape_.q_len / shape_.heads;
      const auto& os = out_.strides();
      cpu::store_row(out_, b * os[0] + h * os[1] + i * os[2], os[3], Dv, o.data(), 1.0f);
      if (lse_) {
        const auto& ls = lse_->strides();
        cpu::store_row(*lse_, b * ls[0] + h * ls[1] + i * ls[2], 1, 1, &lse, 1.0f);
      }
    });
  }

  const Tensor& q_;
  const KvSource& kv_;
  std::span<const KvBatchRow> rows_;
  const Tensor& out_;
  const Tensor* lse_;
  AttentionShape shape_;
  DecodeCpuOptions decode_;
  const DecodeCpuKernels& kernels_;
  cpu::CpuThreadPool& pool_;
  std::optional<PreparedMod> score_, mask_;
  float q_multiplier_ = 1, exp2_factor_ = 1;
  bool bf16_scores_ = false;
  int64_t group_ = 1, group_rows_ = 1;
  int splits_ = 1;
  const int32_t* table_ = nullptr;
  int page_shift_ = 0;
  int64_t table_stride_ = 0;
  std::vector<std::pair<int64_t, int64_t>> live_;
  FloatBuffer partial_out_, partial_lse_;
};

}  // namespace

void decode_attention(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
                      const AttentionOptions& options, Tensor* lse, const DecodeCpuOptions& decode) {
  if (decode.num_splits < 0) throw RuntimeError("decode_attention: num_splits must be >= 0");
  const AttentionShape shape = check_kv_source_args(kFunction, q, kv, rows, out, options, lse);
  DecodeRun(q, kv, rows, out, lse, shape, options, decode).run();
}

void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                      const AttentionOptions& options, Tensor* lse, const DecodeCpuOptions& decode) {
  const AttentionShape shape = check_attention_args(kFunction, q, k, v, out, options, lse);
  std::vector<KvBatchRow> rows(static_cast<size_t>(shape.batch));
  for (int64_t b = 0; b < shape.batch; ++b) {
    rows[static_cast<size_t>(b)] = {static_cast<int32_t>(b), static_cast<int32_t>(shape.kv_len), options.q_offset};
  }
  KvSource kv;
  kv.k = k;
  kv.v = v;
  decode_attention(q, kv, rows, out, options, lse, decode);
}

}  // namespace attnc::decode
