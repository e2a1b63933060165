#include "runtime/families/flash_backward/FlashBackwardCpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <vector>

#include "runtime/core/ModDerivatives.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "flash_attention_backward";
constexpr int32_t BLOCK_M = kFlashBackwardBlockM;
constexpr int32_t BLOCK_N = kFlashBackwardBlockN;
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// The rows of a 4-d tensor as fp32: the tensor's own memory when it is fp32 with contiguous rows
// (no copy: a copy of Q or dO costs the backward pass a tenth of its time in page faults and
// conversion), else a contiguous fp32 copy. Row (a, b, i) starts at data + a s0 + b s1 + i s2.
struct Fp32Rows {
  std::vector<float> copy;
  const float* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;

  Fp32Rows(const Tensor& t, cpu::CpuThreadPool& pool, int threads) {
    const auto& n = t.shape();
    const auto& s = t.strides();
    if (t.dtype() == DType::F32 && (s[3] == 1 || n[3] <= 1)) {
      data = static_cast<const float*>(t.data());
      s0 = s[0], s1 = s[1], s2 = s[2];
      return;
    }
    copy.resize(static_cast<size_t>(t.numel()));
    pool.parallel_for(n[0] * n[1], threads, [&](int, int64_t ab) {
      const int64_t a = ab / n[1], b = ab % n[1];
      float* dst = copy.data() + ab * n[2] * n[3];
      for (int64_t i = 0; i < n[2]; ++i) {
        const int64_t base = a * s[0] + b * s[1] + i * s[2];
        for (int64_t d = 0; d < n[3]; ++d) dst[i * n[3] + d] = load_as_float(t.data(), t.dtype(), base + d * s[3]);
      }
    });
    data = copy.data();
    s2 = n[3], s1 = n[2] * n[3], s0 = n[1] * n[2] * n[3];
  }

  const float* row(int64_t a, int64_t b, int64_t i) const { return data + a * s0 + b * s1 + i * s2; }
};

// t[a, b, i, 0..n) = src[0..n), rounding to t's dtype.
void store_row(const Tensor& t, int64_t a, int64_t b, int64_t i, const float* src, int64_t n) {
  const auto& s = t.strides();
  const int64_t base = a * s[0] + b * s[1] + i * s[2];
  if (t.dtype() == DType::F32 && s[3] == 1) {
    std::copy(src, src + n, static_cast<float*>(t.data()) + base);
    return;
  }
  for (int64_t d = 0; d < n; ++d) {
    const int64_t offset = base + d * s[3];
    switch (t.dtype()) {
      case DType::F32: static_cast<float*>(t.data())[offset] = src[d]; break;
      case DType::F16: static_cast<uint16_t*>(t.data())[offset] = float_to_half(src[d]); break;
      default: static_cast<uint16_t*>(t.data())[offset] = float_to_bfloat16(src[d]); break;
    }
  }
}

// A mod as the kernel runs it: its compiled program and the call's packed arguments.
struct PreparedMod {
  const Mod* mod;
  std::shared_ptr<const CpuModProgram> program;
  CpuModArgs args;

  PreparedMod(const Mod& m, bool check_bounds, CpuBackend backend)
      : mod(&m), program(compile_cpu_program(m, backend)), args(CpuModArgs::pack(m, check_bounds)) {}
};

struct PreparedSite {
  uint32_t param;
  PreparedMod derivative;
  std::vector<PreparedMod> indices;
  size_t gradient;  // which ParamGradient it adds to
};

struct ParamShape {
  uint32_t param;
  std::vector<int64_t> shape;
  int64_t count;
};

// Per-worker scratch, allocated once per call.
struct Workspace {
  cpu::AlignedBuffer<float> s, raw, dropped, dp, ds, g, index, dq, dk, dv, k, kt, vt, row_max, row_sum, row_alpha;
  std::vector<std::vector<double>> params;  // per float tensor parameter: this worker's gradient sums
  FlashBackwardStats stats;

  Workspace(int64_t head_dim, int64_t value_dim, const std::vector<ParamShape>& shapes)
      : s(BLOCK_M * BLOCK_N),
        raw(BLOCK_M * BLOCK_N),
        dropped(BLOCK_M * BLOCK_N),
        dp(BLOCK_M * BLOCK_N),
        ds(BLOCK_M * BLOCK_N),
        g(BLOCK_M * BLOCK_N),
        index(BLOCK_M * BLOCK_N * 8),
        dq(BLOCK_M * std::max<int64_t>(head_dim, 1)),
        dk(BLOCK_N * std::max<int64_t>(head_dim, 1)),
        dv(BLOCK_N * std::max<int64_t>(value_dim, 1)),
        k(BLOCK_N * std::max<int64_t>(head_dim, 1)),
        kt(BLOCK_N * std::max<int64_t>(head_dim, 1)),
        vt(BLOCK_N * std::max<int64_t>(value_dim, 1)),
        row_max(BLOCK_M),
        row_sum(BLOCK_M),
        row_alpha(BLOCK_M) {
    for (const ParamShape& shape : shapes) params.emplace_back(static_cast<size_t>(shape.count), 0.0);
  }
};

class FlashBackwardRun {
 public:
  FlashBackwardRun(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                   const Tensor& dout, AttentionGradients& grads, const AttentionShape& shape,
                   const AttentionOptions& options, const Dropout& dropout, const FlashBackwardOptions& flash)
      : grads_(grads),
        shape_(shape),
        options_(options),
        dropout_(dropout),
        flash_(flash),
        kernels_(cpu::best_micro_kernels()),
        pool_(cpu::CpuThreadPool::shared()) {
    scale_ = options.scale ? *options.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    group_ = shape.kv_heads > 0 ? shape.heads / shape.kv_heads : 1;
    q_tiles_ = (shape.q_len + BLOCK_M - 1) / BLOCK_M;
    kv_tiles_ = (shape.kv_len + BLOCK_N - 1) / BLOCK_N;
    threshold_ = dropout_threshold(dropout.rate);
    prepare_mods(options, flash.backend);
    const int threads = flash.num_threads;
    // Q and dO as they are; K and V are packed per work item (run_item), K times the scale, so
    // S = Q K_s^T and dQ = dS K_s, and dK = scale dS^T Q is scaled once per item.
    q_.emplace(q, pool_, threads);
    do_.emplace(dout, pool_, threads);
    k_tensor_ = &k;
    v_tensor_ = &v;
    rows_ = shape.batch * shape.heads * shape.q_len;
    lse_.resize(static_cast<size_t>(rows_));
    delta_.resize(static_cast<size_t>(rows_));
    // D_i = rowsum(dO * O), and the LSE, per query row.
    const auto& ls = lse.strides();
    const auto& os = out.strides();
    pool_.parallel_for(shape.batch * shape.heads, threads, [&](int, int64_t bh) {
      const int64_t b = bh / shape.heads, h = bh % shape.heads;
      for (int64_t i = 0; i < shape.q_len; ++i) {
        const int64_t row = bh * shape.q_len + i;
        lse_[row] = load_as_float(lse.data(), lse.dtype(), b * ls[0] + h * ls[1] + i * ls[2]);
        const int64_t base = b * os[0] + h * os[1] + i * os[2];
        const float* dout_row = do_->row(b, h, i);
        double sum = 0;
        if (out.dtype() == DType::F32 && os[3] == 1) {
          const float* o = static_cast<const float*>(out.data()) + base;
          for (int64_t d = 0; d < shape.value_dim; ++d) sum += static_cast<double>(o[d]) * dout_row[d];
        } else {
          for (int64_t d = 0; d < shape.value_dim; ++d) {
            sum += static_cast<double>(load_as_float(out.data(), out.dtype(), base + d * os[3])) * dout_row[d];
          }
        }
        delta_[row] = static_cast<float>(sum);
      }
    });
    // dQ is summed straight into grads.dq when that is fp32 with contiguous rows (as the gradients
    // allocated for the caller are), else into an fp32 tensor that run() rounds into it.
    const Tensor& dq = grads.dq;
    dq_in_place_ = dq.dtype() == DType::F32 && (dq.stride(3) == 1 || shape.head_dim <= 1);
    dq_sum_ = dq_in_place_ ? dq : Tensor::empty(DType::F32, dq.shape());
    pool_.parallel_for(shape.batch * shape.heads, threads, [&](int, int64_t bh) {
      for (int64_t i = 0; i < shape.q_len; ++i) {
        float* row = dq_row(bh / shape.heads, bh % shape.heads, i);
        std::fill(row, row + shape.head_dim, 0.0f);
      }
    });
    dq_locks_ =
        std::make_unique<std::mutex[]>(static_cast<size_t>(std::max<int64_t>(1, shape.batch * shape.heads * q_tiles_)));
  }

  void run() {
    const int64_t items = shape_.batch * shape_.kv_heads * kv_tiles_;
    const int workers = items > 0 ? pool_.workers_for(items, flash_.num_threads) : 0;
    std::vector<std::unique_ptr<Workspace>> spaces(static_cast<size_t>(workers));
    if (items > 0) {
      pool_.parallel_for(items, workers, [&](int worker, int64_t item) {
        auto& space = spaces[static_cast<size_t>(worker)];
        if (!space) space = std::make_unique<Workspace>(shape_.head_dim, shape_.value_dim, param_shapes_);
        run_item(item, *space);
      });
    }
    // dQ: already scaled (K_s carries the scale); rounded into grads.dq once every item has added
    // its part, unless it was summed there.
    if (!dq_in_place_) {
      pool_.parallel_for(shape_.batch * shape_.heads, flash_.num_threads, [&](int, int64_t bh) {
        const int64_t b = bh / shape_.heads, h = bh % shape_.heads;
        for (int64_t i = 0; i < shape_.q_len; ++i) store_row(grads_.dq, b, h, i, dq_row(b, h, i), shape_.head_dim);
      });
    }
    grads_.dparams.clear();
    FlashBackwardStats total;
    for (size_t p = 0; p < param_shapes_.size(); ++p) {
      std::vector<double> sum(static_cast<size_t>(param_shapes_[p].count), 0.0);
      for (const auto& space : spaces) {
        if (!space) continue;
        for (size_t e = 0; e < sum.size(); ++e) sum[e] += space->params[p][e];
      }
      Tensor t = Tensor::empty(DType::F32, param_shapes_[p].shape);
      auto* data = static_cast<float*>(t.data());
      for (size_t e = 0; e < sum.size(); ++e) data[e] = static_cast<float>(sum[e]);
      grads_.dparams.emplace(options_.score_mod->def().params[param_shapes_[p].param].name, std::move(t));
    }
    for (const auto& space : spaces) {
      if (!space) continue;
      total.tiles_computed += space->stats.tiles_computed;
      total.tiles_skipped += space->stats.tiles_skipped;
      total.tiles_full += space->stats.tiles_full;
      total.tiles_partial += space->stats.tiles_partial;
    }
    if (flash_.stats) *flash_.stats = total;
  }

 private:
  void prepare_mods(const AttentionOptions& options, CpuBackend backend) {
    if (options.mask_mod) mask_.emplace(*options.mask_mod, options.check_bounds, backend);
    if (!options.score_mod) return;
    score_.emplace(*options.score_mod, options.check_bounds, backend);
    derivatives_.emplace(derive_score_mod(kFunction, *options.score_mod));
    if (!derivatives_->d_score_is_one) d_score_.emplace(derivatives_->d_score, options.check_bounds, backend);
    for (uint32_t p : derivatives_->float_tensors) {
      const Tensor& bound = std::get<Tensor>(*options.score_mod->argument(p));
      param_shapes_.push_back({p, bound.shape(), bound.numel()});
    }
    for (const ModDerivatives::Site& site : derivatives_->sites) {
      size_t gradient = 0;
      while (param_shapes_[gradient].param != site.param) ++gradient;
      PreparedSite prepared{site.param, PreparedMod(site.derivative, options.check_bounds, backend), {}, gradient};
      // Indices are clamped by their own expressions, so they never report.
      for (const Mod& index : site.indices) prepared.indices.emplace_back(index, false, backend);
      sites_.push_back(std::move(prepared));
    }
  }

  struct Tile {
    int64_t b, h, g;
    int32_t q_first, rows, kv_first, cols;
    int32_t q_pos;  // the mods' q_idx of row q_first
    TilePosition at;
  };

  void apply(const PreparedMod& mod, float* tile, const Tile& t) const {
    CpuBoundsReport report;
    mod.program->apply(tile, BLOCK_N, t.rows, t.cols, t.q_pos, t.kv_first, t.at, mod.args, &report);
    if (report.failed) {
      throw RuntimeError(out_of_range_message(kFunction, *mod.mod, static_cast<uint32_t>(report.param), report.dim,
                                              report.index, report.extent, report.b, report.h, report.q_idx,
                                              report.kv_idx));
    }
  }

  // A copy of the raw scores with `mod` applied, in `dst`.
  void apply_to_raw(const PreparedMod& mod, const float* raw, float* dst, const Tile& t) const {
    for (int32_t r = 0; r < t.rows; ++r) std::copy(raw + r * BLOCK_N, raw + r * BLOCK_N + t.cols, dst + r * BLOCK_N);
    apply(mod, dst, t);
  }

  // Packs key tile `kv_first` of KV head (b, g): K_s (cols x D) and its transpose K_s^T (D x BLOCK_N),
  // both times the scale, and V^T (Dv x BLOCK_N), so the products that read them walk contiguous rows.
  void pack_tile(int64_t b, int64_t g, int32_t kv_first, int32_t cols, Workspace& w) const {
    const int64_t D = shape_.head_dim, Dv = shape_.value_dim;
    auto pack = [&](const Tensor& t, int64_t dim, float multiplier, float* rows, float* transposed) {
      const auto& st = t.strides();
      const bool fp32_rows = t.dtype() == DType::F32 && st[3] == 1;
      for (int32_t c = 0; c < cols; ++c) {
        const int64_t base = b * st[0] + g * st[1] + (kv_first + c) * st[2];
        for (int64_t d = 0; d < dim; ++d) {
          const float x = multiplier * (fp32_rows ? static_cast<const float*>(t.data())[base + d]
                                                  : load_as_float(t.data(), t.dtype(), base + d * st[3]));
          if (rows != nullptr) rows[c * dim + d] = x;
          transposed[d * BLOCK_N + c] = x;
        }
      }
    };
    pack(*k_tensor_, D, scale_, w.k.get(), w.kt.get());
    pack(*v_tensor_, Dv, 1.0f, nullptr, w.vt.get());
  }

  void run_item(int64_t item, Workspace& w) {
    const int64_t kt = item % kv_tiles_, bg = item / kv_tiles_;
    const int64_t b = bg / shape_.kv_heads, g = bg % shape_.kv_heads;
    const int64_t D = shape_.head_dim, Dv = shape_.value_dim, Skv = shape_.kv_len;
    const auto kv_first = static_cast<int32_t>(kt * BLOCK_N);
    const auto cols = static_cast<int32_t>(std::min<int64_t>(BLOCK_N, Skv - kv_first));
    pack_tile(b, g, kv_first, cols, w);
    float* dk = w.dk.get();
    float* dv = w.dv.get();
    std::fill(dk, dk + cols * D, 0.0f);
    std::fill(dv, dv + cols * Dv, 0.0f);

    for (int64_t h = g * group_; h < (g + 1) * group_; ++h) {
      for (int64_t step = 0; step < q_tiles_; ++step) {
        // Items run side by side on neighbouring key tiles; starting each one's walk over the query
        // tiles at its own key tile keeps two workers from queueing for the same dQ rows' lock.
        const int64_t qt = (kt + step) % q_tiles_;
        Tile t;
        t.b = b;
        t.h = h;
        t.g = g;
        t.q_first = static_cast<int32_t>(qt * BLOCK_M);
        t.rows = static_cast<int32_t>(std::min<int64_t>(BLOCK_M, shape_.q_len - t.q_first));
        t.kv_first = kv_first;
        t.cols = cols;
        t.q_pos = options_.q_offset + t.q_first;
        t.at = TilePosition{static_cast<int32_t>(b),
                            static_cast<int32_t>(h),
                            static_cast<int32_t>(shape_.q_len),
                            static_cast<int32_t>(Skv),
                            static_cast<int32_t>(shape_.heads),
                            static_cast<int32_t>(shape_.kv_heads)};
        ir::TileClass cls = ir::TileClass::Full;
        if (mask_) {
          cls =
              mask_->program->classify(t.q_pos, t.q_pos + t.rows - 1, kv_first, kv_first + cols - 1, t.at, mask_->args);
        }
        if (cls == ir::TileClass::Empty) {
          ++w.stats.tiles_skipped;
          continue;
        }
        ++w.stats.tiles_computed;
        ++(cls == ir::TileClass::Full ? w.stats.tiles_full : w.stats.tiles_partial);
        run_tile(t, cls == ir::TileClass::Partial, w);
      }
    }
    // dK = scale dS^T Q: the scale once here instead of on every tile.
    for (int64_t e = 0; e < cols * D; ++e) dk[e] *= scale_;
    for (int32_t c = 0; c < cols; ++c) {
      store_row(grads_.dk, b, g, kv_first + c, dk + c * D, D);
      store_row(grads_.dv, b, g, kv_first + c, dv + c * Dv, Dv);
    }
  }

  void run_tile(const Tile& t, bool masked, Workspace& w) {
    const int64_t D = shape_.head_dim, Dv = shape_.value_dim;
    const int64_t row0 = (t.b * shape_.heads + t.h) * shape_.q_len + t.q_first;  // first row of lse_, delta_
    const float* q_tile = q_->row(t.b, t.h, t.q_first);
    const float* do_tile = do_->row(t.b, t.h, t.q_first);
    const int64_t ldq = q_->s2, lddo = do_->s2;
    float *s = w.s.get(), *raw = w.raw.get(), *dp = w.dp.get(), *ds = w.ds.get();

    // S = Q K_s^T, then s' and the mask, then P = exp(s' - LSE).
    kernels_.gemm(t.rows, t.cols, static_cast<int32_t>(D), q_tile, ldq, w.kt.get(), BLOCK_N, s, BLOCK_N, false);
    const bool keep_raw = score_ && (d_score_ || !sites_.empty());
    if (keep_raw) {
      for (int32_t r = 0; r < t.rows; ++r) std::copy(s + r * BLOCK_N, s + r * BLOCK_N + t.cols, raw + r * BLOCK_N);
    }
    if (score_) apply(*score_, s, t);
    if (masked) apply(*mask_, s, t);
    // P = exp(s' - LSE) through the online-softmax step with the row max preset to the LSE: it
    // computes exp2((s' - max(LSE, s')) * log2(e)), which is exp(s' - LSE) since s' <= LSE (up to
    // rounding, where it gives 1), and 0 for masked elements and rows with LSE -inf. P stays in s.
    float* row_max = w.row_max.get();
    float* row_sum = w.row_sum.get();
    std::copy(lse_.data() + row0, lse_.data() + row0 + t.rows, row_max);
    std::fill(row_sum, row_sum + t.rows, 0.0f);
    kernels_.softmax_tile(s, BLOCK_N, t.rows, t.cols, std::numbers::log2e_v<float>, row_max, row_sum,
                          w.row_alpha.get());
    const float* p = s;
    const float keep_scale = dropout_.keep_scale();
    // dV += (P * M * k)^T dO, through gemm_at (no transposed copy of P).
    const float* p_dropped = p;
    uint64_t keep[BLOCK_M];  // the tile's dropout decisions, drawn once for P and dP
    if (dropout_.enabled()) {
      kernels_.dropout_keep_bits(threshold_, dropout_.seed, static_cast<int32_t>(t.b), static_cast<int32_t>(t.h),
                                 t.q_pos, t.rows, t.kv_first, t.cols, keep);
      kernels_.dropout_apply(p, w.dropped.get(), BLOCK_N, t.rows, t.cols, keep, keep_scale);
      p_dropped = w.dropped.get();
    }
    kernels_.gemm_at(t.cols, static_cast<int32_t>(Dv), t.rows, p_dropped, BLOCK_N, do_tile, lddo, w.dv.get(), Dv, true);
    // dP = (dO V^T) * M * k, then dS' = P * (dP - D_i), exactly 0 where P is 0.
    kernels_.gemm(t.rows, t.cols, static_cast<int32_t>(Dv), do_tile, lddo, w.vt.get(), BLOCK_N, dp, BLOCK_N, false);
    if (dropout_.enabled()) kernels_.dropout_apply(dp, dp, BLOCK_N, t.rows, t.cols, keep, keep_scale);
    kernels_.softmax_backward_tile(p, dp, BLOCK_N, t.rows, t.cols, delta_.data() + row0, ds);
    for (const PreparedSite& site : sites_) scatter_site(site, t, raw, ds, w);
    if (d_score_) {
      float* g = w.g.get();
      apply_to_raw(*d_score_, raw, g, t);
      for (int32_t r = 0; r < t.rows; ++r) {
        for (int32_t c = 0; c < t.cols; ++c) {
          float& value = ds[r * BLOCK_N + c];
          value = value == 0.0f ? 0.0f : value * g[r * BLOCK_N + c];  // not 0 * inf where P is 0
        }
      }
    }
    // dK += dS^T Q (scaled per item), through gemm_at.
    kernels_.gemm_at(t.cols, static_cast<int32_t>(D), t.rows, ds, BLOCK_N, q_tile, ldq, w.dk.get(), D, true);
    // dQ += dS K_s: the tile's part computed alone, then added to the shared rows under the query
    // tile's lock. (Accumulating the product straight into the shared rows would make even two
    // contributions' sum depend on their order; added whole, x + y = y + x.)
    float* dq_part = w.dq.get();
    kernels_.gemm(t.rows, static_cast<int32_t>(D), t.cols, ds, BLOCK_N, w.k.get(), D, dq_part, D, false);
    const int64_t lock = (t.b * shape_.heads + t.h) * q_tiles_ + t.q_first / BLOCK_M;
    std::lock_guard<std::mutex> guard(dq_locks_[static_cast<size_t>(lock)]);
    const int64_t ld = dq_sum_.stride(2);
    float* target = dq_row(t.b, t.h, t.q_first);
    for (int32_t r = 0; r < t.rows; ++r) {
      for (int64_t d = 0; d < D; ++d) target[r * ld + d] += dq_part[r * D + d];
    }
  }

  // dparam[index(site)] += dS' * d s'/d(element) over the tile's elements with P != 0.
  void scatter_site(const PreparedSite& site, const Tile& t, const float* raw, const float* ds, Workspace& w) const {
    float* g = w.g.get();
    apply_to_raw(site.derivative, raw, g, t);
    const size_t rank = site.indices.size();
    for (size_t d = 0; d < rank; ++d) apply_to_raw(site.indices[d], raw, w.index.get() + d * BLOCK_M * BLOCK_N, t);
    const std::vector<int64_t>& shape = param_shapes_[site.gradient].shape;
    std::vector<double>& sums = w.params[site.gradient];
    for (int32_t r = 0; r < t.rows; ++r) {
      for (int32_t c = 0; c < t.cols; ++c) {
        const float upstream = ds[r * BLOCK_N + c];
        if (upstream == 0.0f) continue;
        int64_t offset = 0;
        for (size_t d = 0; d < rank; ++d) {
          offset = offset * shape[d] + static_cast<int64_t>(w.index.get()[d * BLOCK_M * BLOCK_N + r * BLOCK_N + c]);
        }
        sums[static_cast<size_t>(offset)] += static_cast<double>(upstream) * g[r * BLOCK_N + c];
      }
    }
  }

  AttentionGradients& grads_;
  AttentionShape shape_;
  AttentionOptions options_;
  Dropout dropout_;
  FlashBackwardOptions flash_;
  const cpu::CpuMicroKernels& kernels_;
  cpu::CpuThreadPool& pool_;
  float scale_ = 1;
  int64_t group_ = 1, q_tiles_ = 0, kv_tiles_ = 0, rows_ = 0;
  uint32_t threshold_ = 0;
  std::optional<PreparedMod> score_, mask_, d_score_;
  std::optional<ModDerivatives> derivatives_;
  std::vector<ParamShape> param_shapes_;
  std::vector<PreparedSite> sites_;
  std::optional<Fp32Rows> q_, do_;
  const Tensor* k_tensor_ = nullptr;
  const Tensor* v_tensor_ = nullptr;
  std::vector<float> lse_, delta_;
  Tensor dq_sum_;  // fp32: grads.dq itself, or the sums rounded into it at the end
  bool dq_in_place_ = false;
  std::unique_ptr<std::mutex[]> dq_locks_;

  float* dq_row(int64_t b, int64_t h, int64_t i) const {
    return static_cast<float*>(dq_sum_.data()) + b * dq_sum_.stride(0) + h * dq_sum_.stride(1) + i * dq_sum_.stride(2);
  }
};

}  // namespace

void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& dout, AttentionGradients& grads, const AttentionOptions& options,
                              const Dropout& dropout, const FlashBackwardOptions& flash) {
  const AttentionShape shape = check_backward_args(kFunction, q, k, v, out, &lse, dout, grads, options, dropout);
  FlashBackwardRun(q, k, v, out, lse, dout, grads, shape, options, dropout, flash).run();
}

}  // namespace attnc
