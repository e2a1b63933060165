// The portable micro-kernels and the run-time choice between instruction sets.
#include "runtime/cpu/CpuMicroKernels.h"

#include "runtime/core/Dropout.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cmath>
#include <limits>

namespace attnc::cpu {

namespace {

// C (=|+=) A B with A's element (i, kk) at a[i rs + kk cs]: A itself, or the transpose of a stored
// matrix (gemm_at).
void gemm_strided_scalar(int32_t m, int32_t n, int32_t k, const float* a, int64_t rs, int64_t cs, const float* b,
                         int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int32_t i = 0; i < m; ++i) {
    float* c_row = c + i * ldc;
    if (!accumulate) std::fill(c_row, c_row + n, 0.0f);
    // i-k-j order: the innermost loop is a contiguous axpy the compiler can vectorise.
    for (int32_t kk = 0; kk < k; ++kk) {
      const float a_ik = a[i * rs + kk * cs];
      const float* b_row = b + kk * ldb;
      for (int32_t j = 0; j < n; ++j) c_row[j] += a_ik * b_row[j];
    }
  }
}

void gemm_scalar(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, bool accumulate) {
  gemm_strided_scalar(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate);
}

void gemm_at_scalar(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                    int64_t ldc, bool accumulate) {
  gemm_strided_scalar(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate);
}

void softmax_tile_scalar(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max, float* row_sum,
                         float* row_alpha) {
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  for (int32_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    float m = row_max[r];
    // `x > m` is false for NaN, so NaN scores never become the max (and a NaN max stays NaN).
    for (int32_t j = 0; j < cols; ++j) m = row[j] > m ? row[j] : m;
    if (m == kMinusInf) {
      // Nothing kept in this tile so far, unless a kept score is NaN: then the row is NaN
      // (docs/semantics.md), which a NaN max carries through every later tile and the output.
      if (std::none_of(row, row + cols, [](float x) { return std::isnan(x); })) {
        std::fill(row, row + cols, 0.0f);
        row_alpha[r] = 1.0f;
        continue;
      }
      m = std::numeric_limits<float>::quiet_NaN();
    }
    float sum = 0;
    for (int32_t j = 0; j < cols; ++j) {
      row[j] = std::exp2((row[j] - m) * c);
      sum += row[j];
    }
    row_alpha[r] = std::exp2((row_max[r] - m) * c);  // exp2(-inf) == 0 on the first kept tile
    row_sum[r] = row_sum[r] * row_alpha[r] + sum;
    row_max[r] = m;
  }
}

void scale_rows_scalar(float* o, int64_t ldo, int32_t rows, int32_t cols, const float* alpha) {
  for (int32_t r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    float* row = o + r * ldo;
    for (int32_t j = 0; j < cols; ++j) row[j] *= alpha[r];
  }
}

void softmax_backward_tile_scalar(const float* p, const float* dp, int64_t ld, int32_t rows, int32_t cols,
                                  const float* delta, float* ds) {
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t j = 0; j < cols; ++j) {
      const float prob = p[r * ld + j];
      ds[r * ld + j] = prob == 0.0f ? 0.0f : prob * (dp[r * ld + j] - delta[r]);
    }
  }
}

}  // namespace

void dropout_keep_bits_scalar(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_first, int32_t rows,
                              int32_t kv_first, int32_t cols, uint64_t* bits) {
  for (int32_t r = 0; r < rows; ++r) {
    uint64_t row = 0;
    for (int32_t c = 0; c < cols; ++c) {
      if (dropout_keeps(threshold, seed, b, h, q_first + r, kv_first + c)) row |= uint64_t{1} << c;
    }
    bits[r] = row;
  }
}

void dropout_apply_scalar(const float* src, float* dst, int64_t ld, int32_t rows, int32_t cols, const uint64_t* bits,
                          float scale) {
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t c = 0; c < cols; ++c) dst[r * ld + c] = (bits[r] >> c & 1) != 0 ? src[r * ld + c] * scale : 0.0f;
  }
}

namespace {

const CpuMicroKernels kScalar{CpuIsa::Scalar, "scalar", gemm_scalar, softmax_tile_scalar, scale_rows_scalar,
                              nullptr,        nullptr,  gemm_at_scalar, softmax_backward_tile_scalar,
                              dropout_keep_bits_scalar, dropout_apply_scalar};

constexpr CpuIsa kAllIsas[] = {CpuIsa::Avx512Bf16, CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Scalar};

float bf16_low(uint32_t pair) { return std::bit_cast<float>(pair << 16); }
float bf16_high(uint32_t pair) { return std::bit_cast<float>(pair & 0xFFFF0000u); }

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512Bf16: return "avx512-bf16";
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Scalar: return "scalar";
  }
  return "?";
}

std::optional<CpuIsa> parse_cpu_isa(std::string_view name) {
  for (CpuIsa isa : kAllIsas) {
    if (name == cpu_isa_name(isa)) return isa;
  }
  return std::nullopt;
}

const CpuMicroKernels* micro_kernels(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512Bf16: return avx512_bf16_micro_kernels();
    case CpuIsa::Avx512: return avx512_micro_kernels();
    case CpuIsa::Avx2: return avx2_micro_kernels();
    case CpuIsa::Scalar: return &kScalar;
  }
  return nullptr;
}

bool cpu_supports(CpuIsa isa) { return micro_kernels(isa) != nullptr; }

const CpuMicroKernels& scalar_micro_kernels() { return kScalar; }

const CpuMicroKernels& best_micro_kernels() {
  static const CpuMicroKernels* best = [] {
    std::optional<CpuIsa> cap;
    if (const char* env = std::getenv("ATTNC_CPU_ISA"); env != nullptr && *env != '\0') cap = parse_cpu_isa(env);
    for (CpuIsa isa : kAllIsas) {
      if (cap && static_cast<int>(isa) < static_cast<int>(*cap)) continue;  // better than the cap
      if (const CpuMicroKernels* kernels = micro_kernels(isa)) return kernels;
    }
    return &kScalar;
  }();
  return *best;
}

void gemm_bf16_reference(int32_t m, int32_t n, int32_t kp, const uint32_t* a, int64_t lda, const uint32_t* b,
                         int64_t ldb, float* c, int64_t ldc, bool accumulate, float alpha) {
  for (int32_t i = 0; i < m; ++i) {
    for (int32_t j = 0; j < n; ++j) {
      float sum = accumulate ? c[i * ldc + j] : 0.0f;
      for (int32_t p = 0; p < kp; ++p) {
        // As vdpbf16ps: exact products, the odd (high) pair's added first, each sum rounded.
        const uint32_t x = a[i * lda + p], y = b[p * ldb + j];
        sum += bf16_high(x) * bf16_high(y);
        sum += bf16_low(x) * bf16_low(y);
      }
      c[i * ldc + j] = accumulate ? sum : alpha * sum;
    }
  }
}

}  // namespace attnc::cpu
