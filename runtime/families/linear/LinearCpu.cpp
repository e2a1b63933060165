#include "runtime/families/linear/LinearCpu.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuBlocks.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"

namespace attnc {

namespace {

constexpr const char* kFunction = "linear_attention";
constexpr float kEpsilon = 1e-6f;
// The chunk states of the (b, h) pairs computed together stay below this many bytes (at least one
// pair is always computed).
constexpr int64_t kStateBudgetBytes = int64_t{64} << 20;

// One worker's chunk operands, allocated once per call.
struct Scratch {
  cpu::AlignedBuffer<float> raw;                          // C x max(D, Dv): a chunk as loaded
  cpu::AlignedBuffer<float> phi_q;                        // C x D
  cpu::AlignedBuffer<float> phi_k;                        // C x D
  cpu::AlignedBuffer<float> phi_kt;                       // D x C: phi(K_c)^T, dropped keys 0
  cpu::AlignedBuffer<float> v1;                           // C x (Dv + 1): [V_c | 1], dropped keys 0
  cpu::AlignedBuffer<float> a;                            // C x C: tril(phi(Q_c) phi(K_c)^T)
  cpu::AlignedBuffer<float> y;                            // C x (Dv + 1)
  cpu::AlignedBuffer<float> row_max, row_sum, row_alpha;  // C: the exp2 step's row state

  Scratch(int64_t c, int64_t d, int64_t dv)
      : raw(c * std::max(d, dv)),
        phi_q(c * d),
        phi_k(c * d),
        phi_kt(d * c),
        v1(c * (dv + 1)),
        a(c * c),
        y(c * (dv + 1)),
        row_max(c),
        row_sum(c),
        row_alpha(c) {}
};

class LinearRun {
 public:
  LinearRun(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionShape& shape,
            const KeyMask& mask, const LinearAttentionOptions& options, int num_threads)
      : q_(q),
        k_(k),
        v_(v),
        out_(out),
        s_(shape),
        mask_(mask),
        causal_(options.causal),
        chunk_(options.chunk_size),
        threads_(num_threads),
        kernels_(cpu::best_micro_kernels()),
        pool_(cpu::CpuThreadPool::shared()) {
    group_ = s_.kv_heads > 0 ? s_.heads / s_.kv_heads : 1;
    dv1_ = s_.value_dim + 1;
    q_chunks_ = (s_.q_len + chunk_ - 1) / chunk_;
    k_chunks_ = (s_.kv_len + chunk_ - 1) / chunk_;
    // Causal: query chunk c needs the key chunks before it; non-causal: every key chunk.
    state_chunks_ = causal_ ? std::min(k_chunks_, std::max<int64_t>(q_chunks_ - 1, 0)) : k_chunks_;
    slots_ = std::max<int64_t>(causal_ ? q_chunks_ : 1, std::max<int64_t>(state_chunks_, 1));
  }

  void run() {
    const int64_t pairs = s_.batch * s_.heads;
    if (pairs == 0 || s_.q_len == 0) return;
    const int64_t state_elems = s_.head_dim * dv1_;
    const int64_t group = std::clamp<int64_t>(kStateBudgetBytes / (slots_ * state_elems * 4), 1, pairs);
    std::vector<float> states(static_cast<size_t>(group * slots_ * state_elems));
    const int workers = pool_.workers_for(std::max(group * std::max(q_chunks_, state_chunks_), group), threads_);
    std::vector<std::unique_ptr<Scratch>> scratch(static_cast<size_t>(workers));
    auto scratch_for = [&](int worker) -> Scratch& {
      auto& space = scratch[static_cast<size_t>(worker)];
      if (!space) space = std::make_unique<Scratch>(chunk_, s_.head_dim, s_.value_dim);
      return *space;
    };

    for (int64_t first = 0; first < pairs; first += group) {
      const int64_t count = std::min(group, pairs - first);
      std::fill(states.begin(), states.end(), 0.0f);
      auto state = [&](int64_t pair, int64_t slot) {
        return states.data() + ((pair - first) * slots_ + slot) * state_elems;
      };
      // A: the state increment of every key chunk a query chunk needs.
      pool_.parallel_for(count * state_chunks_, workers, [&](int worker, int64_t index) {
        const int64_t pair = first + index / state_chunks_, c = index % state_chunks_;
        Scratch& sc = scratch_for(worker);
        const int32_t keys = load_keys(sc, pair, c);
        kernels_.gemm(static_cast<int32_t>(s_.head_dim), static_cast<int32_t>(dv1_), keys, sc.phi_kt.get(), chunk_,
                      sc.v1.get(), dv1_, state(pair, c), dv1_, false);
      });
      // B: the states query chunks read.
      pool_.parallel_for(count, workers, [&](int, int64_t index) {
        const int64_t pair = first + index;
        if (!causal_) {
          for (int64_t c = 1; c < state_chunks_; ++c) {
            float* total = state(pair, 0);
            const float* part = state(pair, c);
            for (int64_t i = 0; i < state_elems; ++i) total[i] += part[i];
          }
          return;
        }
        std::vector<float> running(static_cast<size_t>(state_elems), 0.0f), increment(running.size());
        for (int64_t c = 0; c < q_chunks_; ++c) {
          float* slot = state(pair, c);
          std::memcpy(increment.data(), slot, increment.size() * sizeof(float));
          std::memcpy(slot, running.data(), running.size() * sizeof(float));
          for (size_t i = 0; i < running.size(); ++i) running[i] += increment[i];
        }
      });
      // C: the outputs of every query chunk.
      pool_.parallel_for(count * q_chunks_, workers, [&](int worker, int64_t index) {
        const int64_t pair = first + index / q_chunks_, c = index % q_chunks_;
        output_chunk(scratch_for(worker), pair, c, state(pair, causal_ ? c : 0));
      });
    }
  }

 private:
  // phi(x) = x > 0 ? x + 1 : exp(x) of the rows x cols block `raw` (row stride ld) into `dst`
  // (same layout). exp runs on the micro-kernels' vector exp2 through their online-softmax step:
  // with every input clamped to <= 0 and the running max preset to 0, the step's max stays 0 and it
  // leaves exactly exp2(log2(e) x) = exp(x) in place (CpuMicroKernels::softmax_tile's contract).
  void phi(Scratch& sc, const float* raw, float* dst, int64_t ld, int32_t rows, int32_t cols) const {
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t c = 0; c < cols; ++c) dst[r * ld + c] = std::min(raw[r * ld + c], 0.0f);
    }
    std::fill(sc.row_max.get(), sc.row_max.get() + rows, 0.0f);
    std::fill(sc.row_sum.get(), sc.row_sum.get() + rows, 0.0f);
    kernels_.softmax_tile(dst, ld, rows, cols, std::numbers::log2e_v<float>, sc.row_max.get(), sc.row_sum.get(),
                          sc.row_alpha.get());
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t c = 0; c < cols; ++c) {
        const float x = raw[r * ld + c];
        if (x > 0.0f) dst[r * ld + c] = x + 1.0f;
      }
    }
  }

  // phi(K_c)^T into phi_kt and [V_c | 1] into v1, dropped keys zeroed; returns the chunk's keys.
  int32_t load_keys(Scratch& sc, int64_t pair, int64_t c) const {
    const int64_t b = pair / s_.heads, h = pair % s_.heads, g = h / group_;
    const int64_t first = c * chunk_;
    const auto keys = static_cast<int32_t>(std::min<int64_t>(chunk_, s_.kv_len - first));
    const auto D = static_cast<int32_t>(s_.head_dim), Dv = static_cast<int32_t>(s_.value_dim);
    const auto& ks = k_.strides();
    const auto& vs = v_.strides();
    float* raw = sc.raw.get();
    cpu::load_block(k_, b * ks[0] + g * ks[1] + first * ks[2], ks[2], ks[3], keys, D, raw, D);
    float* phi_k = sc.phi_k.get();
    phi(sc, raw, phi_k, D, keys, D);
    cpu::load_block(v_, b * vs[0] + g * vs[1] + first * vs[2], vs[2], vs[3], keys, Dv, sc.v1.get(), dv1_);
    for (int32_t j = 0; j < keys; ++j) {
      const bool keep = mask_.keeps(b, h, first + j);
      float* v_row = sc.v1.get() + j * dv1_;
      v_row[Dv] = 1.0f;
      if (!keep) std::fill(v_row, v_row + dv1_, 0.0f);
      for (int32_t d = 0; d < D; ++d) sc.phi_kt.get()[d * chunk_ + j] = keep ? phi_k[j * D + d] : 0.0f;
    }
    return keys;
  }

  void output_chunk(Scratch& sc, int64_t pair, int64_t c, const float* state) const {
    const int64_t b = pair / s_.heads, h = pair % s_.heads;
    const int64_t first = c * chunk_;
    const auto rows = static_cast<int32_t>(std::min<int64_t>(chunk_, s_.q_len - first));
    const auto D = static_cast<int32_t>(s_.head_dim), Dv = static_cast<int32_t>(s_.value_dim);
    float* y = sc.y.get();
    // Causal: the keys of the query chunk's own chunk, which it sees through a triangular mask.
    const int32_t keys = causal_ && c < k_chunks_ ? load_keys(sc, pair, c) : 0;
    const auto& qs = q_.strides();
    cpu::load_block(q_, b * qs[0] + h * qs[1] + first * qs[2], qs[2], qs[3], rows, D, sc.raw.get(), D);
    phi(sc, sc.raw.get(), sc.phi_q.get(), D, rows, D);
    kernels_.gemm(rows, static_cast<int32_t>(dv1_), D, sc.phi_q.get(), D, state, dv1_, y, dv1_, false);
    if (keys > 0) {
      float* a = sc.a.get();
      kernels_.gemm(rows, keys, D, sc.phi_q.get(), D, sc.phi_kt.get(), chunk_, a, chunk_, false);
      for (int32_t i = 0; i < rows; ++i) {
        for (int32_t j = i + 1; j < keys; ++j) a[i * chunk_ + j] = 0.0f;  // key j after query i
      }
      kernels_.gemm(rows, static_cast<int32_t>(dv1_), keys, a, chunk_, sc.v1.get(), dv1_, y, dv1_, true);
    }
    const auto& os = out_.strides();
    for (int32_t i = 0; i < rows; ++i) {
      const float* row = y + i * dv1_;
      cpu::store_row(out_, b * os[0] + h * os[1] + (first + i) * os[2], os[3], Dv, row, 1.0f / (row[Dv] + kEpsilon));
    }
  }

  const Tensor &q_, &k_, &v_, &out_;
  AttentionShape s_;
  KeyMask mask_;
  bool causal_;
  int64_t chunk_;
  int threads_;
  const cpu::CpuMicroKernels& kernels_;
  cpu::CpuThreadPool& pool_;
  int64_t group_ = 1, dv1_ = 1, q_chunks_ = 0, k_chunks_ = 0, state_chunks_ = 0, slots_ = 1;
};

}  // namespace

void linear_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                          const LinearAttentionOptions& options, int num_threads) {
  const AttentionShape shape = check_attention_args(kFunction, q, k, v, out, AttentionOptions{}, nullptr);
  const KeyMask mask = check_key_mask(kFunction, options.mask, shape);
  if (options.chunk_size < 1) {
    throw RuntimeError(fmt::format("{}: chunk_size must be at least 1, not {}", kFunction, options.chunk_size));
  }
  LinearRun(q, k, v, out, shape, mask, options, num_threads).run();
}

}  // namespace attnc
