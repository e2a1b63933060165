#include "runtime/families/flash/FlashCpuOperands.h"

#include <algorithm>
#include <vector>

#include "runtime/cpu/AlignedBuffer.h"

namespace attnc::flash_cpu {

namespace {

using cpu::AlignedBuffer;

// dst[i] = multiplier * t[offset + i * stride] for i < n, converting fp16 / bf16 to fp32.
void load_row(const Tensor& t, int64_t offset, int64_t stride, int64_t n, float multiplier, float* dst) {
  switch (t.dtype()) {
    case DType::F32: {
      const float* src = static_cast<const float*>(t.data()) + offset;
      if (stride == 1) {
        for (int64_t i = 0; i < n; ++i) dst[i] = multiplier * src[i];
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = multiplier * src[i * stride];
      }
      return;
    }
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data()) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = multiplier * half_to_float(src[i * stride]);
      return;
    }
    default: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data()) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = multiplier * bfloat16_to_float(src[i * stride]);
      return;
    }
  }
}

// dst[i] = t[offset + i * stride] as bf16 bits for i < n: bf16 as it is, fp16 rounded to bf16.
void load_row_bf16(const Tensor& t, int64_t offset, int64_t stride, int64_t n, uint16_t* dst) {
  const uint16_t* src = static_cast<const uint16_t*>(t.data()) + offset;
  if (t.dtype() == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bfloat16(half_to_float(src[i * stride]));
  }
}

uint32_t pair(uint16_t low, uint16_t high) { return uint32_t(low) | uint32_t(high) << 16; }

// ---- fp32 ----

struct Fp32Scratch final : OperandScratch {
  AlignedBuffer<float> q;  // [block_m][D], scaled by alpha
  explicit Fp32Scratch(size_t count) : q(count) {}
};

class Fp32Operands final : public FlashOperands {
 public:
  Fp32Operands(const Tensor& q, const Tensor& k, const Tensor& v, const OperandShape& shape,
               const cpu::CpuMicroKernels& kernels)
      : q_(q), k_(k), v_(v), s_(shape), kernels_(kernels) {
    kv_tiles_ = (s_.shape.kv_len + s_.block_n - 1) / s_.block_n;
  }

  const char* precision() const override { return "fp32"; }

  void pack(cpu::CpuThreadPool& pool, int threads) override {
    pack_keys(pool, threads);
    pack_values(pool, threads);
  }

  std::unique_ptr<OperandScratch> make_scratch() const override {
    return std::make_unique<Fp32Scratch>(static_cast<size_t>(s_.block_m * std::max<int64_t>(s_.shape.head_dim, 1)));
  }

  void load_q(OperandScratch& scratch, int64_t b, int64_t h, int32_t q_first, int32_t rows) const override {
    float* q = static_cast<Fp32Scratch&>(scratch).q.get();
    const auto& qs = q_.strides();
    const int64_t D = s_.shape.head_dim;
    for (int32_t r = 0; r < rows; ++r) {
      load_row(q_, b * qs[0] + h * qs[1] + (q_first + r) * qs[2], qs[3], D, s_.alpha, q + r * D);
    }
  }

  void scores(const OperandScratch& scratch, int64_t b, int64_t g, int64_t tile, Band band, float* s) const override {
    const int64_t D = s_.shape.head_dim, N = s_.block_n;
    const float* q = static_cast<const Fp32Scratch&>(scratch).q.get() + band.row0 * D;
    const float* panel = k_packed_.get() + ((b * s_.shape.kv_heads + g) * kv_tiles_ + tile) * D * N;
    kernels_.gemm(band.rows, band.hi - band.lo, static_cast<int32_t>(D), q, D, panel + band.lo, N,
                  s + band.row0 * N + band.lo, N, false);
  }

  void accumulate(OperandScratch&, int64_t b, int64_t g, int64_t tile, Band band, const float* s,
                  float* o) const override {
    const int64_t Dv = s_.shape.value_dim, kv_first = tile * s_.block_n;
    const float* v_base;
    int64_t ldv;
    if (v_direct_) {
      const auto& vs = v_.strides();
      v_base = static_cast<const float*>(v_.data()) + b * vs[0] + g * vs[1];
      ldv = vs[2];
    } else {
      v_base = v_packed_.get() + (b * s_.shape.kv_heads + g) * s_.shape.kv_len * Dv;
      ldv = Dv;
    }
    const int64_t N = s_.block_n;
    kernels_.gemm(band.rows, static_cast<int32_t>(Dv), band.hi - band.lo, s + band.row0 * N + band.lo, N,
                  v_base + (kv_first + band.lo) * ldv, ldv, o + band.row0 * Dv, Dv, true);
  }

 private:
  // K as the Q·K^T micro-kernel reads it: per (b, kv head, key tile) a [D][block_n] fp32 panel,
  // zero-padded past the last key. Done once per call (O(Skv D) work against O(S Skv D) of math).
  void pack_keys(cpu::CpuThreadPool& pool, int threads) {
    const int64_t D = s_.shape.head_dim, N = s_.block_n;
    const int64_t panel = D * N;
    const int64_t tasks = s_.shape.batch * s_.shape.kv_heads * kv_tiles_;
    k_packed_ = AlignedBuffer<float>(static_cast<size_t>(std::max<int64_t>(tasks * panel, 1)));
    const auto& ks = k_.strides();
    pool.parallel_for(tasks, threads, [&](int, int64_t task) {
      const int64_t bg = task / kv_tiles_, tile = task % kv_tiles_;
      const int64_t b = bg / s_.shape.kv_heads, g = bg % s_.shape.kv_heads;
      float* dst = k_packed_.get() + task * panel;
      std::vector<float> row(static_cast<size_t>(D));
      const int64_t first = tile * N, cols = std::min<int64_t>(N, s_.shape.kv_len - first);
      for (int64_t j = 0; j < N; ++j) {
        if (j < cols) {
          load_row(k_, b * ks[0] + g * ks[1] + (first + j) * ks[2], ks[3], D, 1.0f, row.data());
        } else {
          std::fill(row.begin(), row.end(), 0.0f);
        }
        for (int64_t d = 0; d < D; ++d) dst[d * N + j] = row[static_cast<size_t>(d)];
      }
    });
  }

  // V is read in place when it is fp32 with unit stride along Dv (the P·V micro-kernel takes any
  // row stride); otherwise it is converted once into a contiguous fp32 copy.
  void pack_values(cpu::CpuThreadPool& pool, int threads) {
    const auto& vs = v_.strides();
    const int64_t Dv = s_.shape.value_dim, N = s_.block_n;
    if (v_.dtype() == DType::F32 && (vs[3] == 1 || Dv <= 1)) {
      v_direct_ = true;
      return;
    }
    const int64_t tasks = s_.shape.batch * s_.shape.kv_heads * kv_tiles_;
    v_packed_ = AlignedBuffer<float>(
        static_cast<size_t>(std::max<int64_t>(s_.shape.batch * s_.shape.kv_heads * s_.shape.kv_len * Dv, 1)));
    pool.parallel_for(tasks, threads, [&](int, int64_t task) {
      const int64_t bg = task / kv_tiles_, tile = task % kv_tiles_;
      const int64_t b = bg / s_.shape.kv_heads, g = bg % s_.shape.kv_heads;
      const int64_t first = tile * N, last = std::min<int64_t>(first + N, s_.shape.kv_len);
      for (int64_t j = first; j < last; ++j) {
        load_row(v_, b * vs[0] + g * vs[1] + j * vs[2], vs[3], Dv, 1.0f,
                 v_packed_.get() + (bg * s_.shape.kv_len + j) * Dv);
      }
    });
  }

  const Tensor &q_, &k_, &v_;
  OperandShape s_;
  const cpu::CpuMicroKernels& kernels_;
  int64_t kv_tiles_ = 0;
  AlignedBuffer<float> k_packed_, v_packed_;
  bool v_direct_ = false;
};

// ---- bf16 ----

struct Bf16Scratch final : OperandScratch {
  AlignedBuffer<uint32_t> q;  // [block_m][D2] pairs along the head dim
  AlignedBuffer<uint16_t> p;  // [block_m][block_n] the softmax's P rounded to bf16
  Bf16Scratch(size_t q_pairs, size_t p_count) : q(q_pairs), p(p_count) {}
};

class Bf16Operands final : public FlashOperands {
 public:
  Bf16Operands(const Tensor& q, const Tensor& k, const Tensor& v, const OperandShape& shape,
               const cpu::CpuMicroKernels& kernels)
      : q_(q), k_(k), v_(v), s_(shape), kernels_(kernels) {
    kv_tiles_ = (s_.shape.kv_len + s_.block_n - 1) / s_.block_n;
    d2_ = (s_.shape.head_dim + 1) / 2;
  }

  const char* precision() const override { return "bf16"; }

  void pack(cpu::CpuThreadPool& pool, int threads) override {
    pack_keys(pool, threads);
    pack_values(pool, threads);
  }

  std::unique_ptr<OperandScratch> make_scratch() const override {
    return std::make_unique<Bf16Scratch>(static_cast<size_t>(s_.block_m * std::max<int64_t>(d2_, 1)),
                                         static_cast<size_t>(s_.block_m * s_.block_n));
  }

  void load_q(OperandScratch& scratch, int64_t b, int64_t h, int32_t q_first, int32_t rows) const override {
    auto* q = reinterpret_cast<uint16_t*>(static_cast<Bf16Scratch&>(scratch).q.get());
    const auto& qs = q_.strides();
    const int64_t D = s_.shape.head_dim;
    for (int32_t r = 0; r < rows; ++r) {
      uint16_t* row = q + r * 2 * d2_;
      load_row_bf16(q_, b * qs[0] + h * qs[1] + (q_first + r) * qs[2], qs[3], D, row);
      if (D % 2 == 1) row[D] = 0;  // the pad half of the last pair
    }
  }

  void scores(const OperandScratch& scratch, int64_t b, int64_t g, int64_t tile, Band band, float* s) const override {
    const int64_t N = s_.block_n;
    const uint32_t* q = static_cast<const Bf16Scratch&>(scratch).q.get() + band.row0 * d2_;
    const uint32_t* panel = k_packed_.get() + ((b * s_.shape.kv_heads + g) * kv_tiles_ + tile) * d2_ * N;
    kernels_.gemm_bf16(band.rows, band.hi - band.lo, static_cast<int32_t>(d2_), q, d2_, panel + band.lo, N,
                       s + band.row0 * N + band.lo, N, false, s_.alpha);
  }

  void accumulate(OperandScratch& scratch, int64_t b, int64_t g, int64_t tile, Band band, const float* s,
                  float* o) const override {
    const int64_t Dv = s_.shape.value_dim, N = s_.block_n;
    const int32_t cols = band.hi - band.lo, pairs = (cols + 1) / 2;
    // P rounded to bf16 in pairs of keys; an odd last key is paired with a 0 (V is 0 there too).
    uint16_t* p = static_cast<Bf16Scratch&>(scratch).p.get() + band.row0 * N + band.lo;
    kernels_.round_to_bf16(s + band.row0 * N + band.lo, N, band.rows, cols, p, N, 2 * pairs);
    const uint32_t* v_tile =
        v_packed_.get() + ((b * s_.shape.kv_heads + g) * kv_tiles_ * N / 2 + tile * N / 2 + band.lo / 2) * Dv;
    kernels_.gemm_bf16(band.rows, static_cast<int32_t>(Dv), pairs, reinterpret_cast<const uint32_t*>(p), N / 2, v_tile,
                       Dv, o + band.row0 * Dv, Dv, true, 1.0f);
  }

 private:
  // Per (b, kv head, key tile) a [D2][block_n] panel of pairs along the head dim: the pair at (p, j)
  // holds k[j][2p] and k[j][2p + 1]; zero past the last key and past an odd head dim.
  void pack_keys(cpu::CpuThreadPool& pool, int threads) {
    const int64_t D = s_.shape.head_dim, N = s_.block_n;
    const int64_t panel = d2_ * N;
    const int64_t tasks = s_.shape.batch * s_.shape.kv_heads * kv_tiles_;
    k_packed_ = AlignedBuffer<uint32_t>(static_cast<size_t>(std::max<int64_t>(tasks * panel, 1)));
    const auto& ks = k_.strides();
    pool.parallel_for(tasks, threads, [&](int, int64_t task) {
      const int64_t bg = task / kv_tiles_, tile = task % kv_tiles_;
      const int64_t b = bg / s_.shape.kv_heads, g = bg % s_.shape.kv_heads;
      uint32_t* dst = k_packed_.get() + task * panel;
      std::vector<uint16_t> row(static_cast<size_t>(2 * d2_), 0);
      const int64_t first = tile * N, cols = std::min<int64_t>(N, s_.shape.kv_len - first);
      for (int64_t j = 0; j < N; ++j) {
        if (j < cols) {
          load_row_bf16(k_, b * ks[0] + g * ks[1] + (first + j) * ks[2], ks[3], D, row.data());
        } else {
          std::fill(row.begin(), row.end(), uint16_t{0});
        }
        for (int64_t p = 0; p < d2_; ++p) dst[p * N + j] = pair(row[size_t(2 * p)], row[size_t(2 * p + 1)]);
      }
    });
  }

  // Per (b, kv head) a [kv_tiles * block_n / 2][Dv] array of pairs along the keys: the pair at
  // (p, d) holds v[2p][d] and v[2p + 1][d]; zero past the last key.
  void pack_values(cpu::CpuThreadPool& pool, int threads) {
    const int64_t Dv = s_.shape.value_dim, N = s_.block_n;
    const int64_t tasks = s_.shape.batch * s_.shape.kv_heads * kv_tiles_;
    v_packed_ = AlignedBuffer<uint32_t>(static_cast<size_t>(std::max<int64_t>(tasks * N / 2 * Dv, 1)));
    const auto& vs = v_.strides();
    pool.parallel_for(tasks, threads, [&](int, int64_t task) {
      const int64_t bg = task / kv_tiles_, tile = task % kv_tiles_;
      const int64_t b = bg / s_.shape.kv_heads, g = bg % s_.shape.kv_heads;
      uint32_t* dst = v_packed_.get() + task * N / 2 * Dv;
      std::vector<uint16_t> even(static_cast<size_t>(Dv)), odd(static_cast<size_t>(Dv));
      for (int64_t p = 0; p < N / 2; ++p) {
        for (int64_t e = 0; e < 2; ++e) {
          std::vector<uint16_t>& row = e == 0 ? even : odd;
          const int64_t j = tile * N + 2 * p + e;
          if (j < s_.shape.kv_len) {
            load_row_bf16(v_, b * vs[0] + g * vs[1] + j * vs[2], vs[3], Dv, row.data());
          } else {
            std::fill(row.begin(), row.end(), uint16_t{0});
          }
        }
        for (int64_t d = 0; d < Dv; ++d) dst[p * Dv + d] = pair(even[size_t(d)], odd[size_t(d)]);
      }
    });
  }

  const Tensor &q_, &k_, &v_;
  OperandShape s_;
  const cpu::CpuMicroKernels& kernels_;
  int64_t kv_tiles_ = 0, d2_ = 0;
  AlignedBuffer<uint32_t> k_packed_, v_packed_;
};

bool is_16_bit_float(const Tensor& t) { return t.dtype() == DType::BF16 || t.dtype() == DType::F16; }

}  // namespace

bool uses_bf16_products(const Tensor& q, const Tensor& k, const Tensor& v, const cpu::CpuMicroKernels& kernels,
                        bool allow_bf16) {
  return allow_bf16 && kernels.gemm_bf16 != nullptr && is_16_bit_float(q) && is_16_bit_float(k) && is_16_bit_float(v);
}

std::unique_ptr<FlashOperands> make_flash_operands(const Tensor& q, const Tensor& k, const Tensor& v,
                                                   const OperandShape& shape, const cpu::CpuMicroKernels& kernels,
                                                   bool allow_bf16) {
  if (uses_bf16_products(q, k, v, kernels, allow_bf16) && shape.block_n % 2 == 0) return std::make_unique<Bf16Operands>(q, k, v, shape, kernels);
  return std::make_unique<Fp32Operands>(q, k, v, shape, kernels);
}

}  // namespace attnc::flash_cpu
