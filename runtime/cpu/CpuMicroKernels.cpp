// The portable micro-kernels and the run-time choice between instruction sets.
#include "runtime/cpu/CpuMicroKernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnc::cpu {

namespace {

void gemm_scalar(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, bool accumulate) {
  for (int32_t i = 0; i < m; ++i) {
    float* c_row = c + i * ldc;
    if (!accumulate) std::fill(c_row, c_row + n, 0.0f);
    // i-k-j order: the innermost loop is a contiguous axpy the compiler can vectorise.
    for (int32_t kk = 0; kk < k; ++kk) {
      const float a_ik = a[i * lda + kk];
      const float* b_row = b + kk * ldb;
      for (int32_t j = 0; j < n; ++j) c_row[j] += a_ik * b_row[j];
    }
  }
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

const CpuMicroKernels kScalar{"scalar", gemm_scalar, softmax_tile_scalar, scale_rows_scalar};

}  // namespace

const CpuMicroKernels& scalar_micro_kernels() { return kScalar; }

const CpuMicroKernels& best_micro_kernels() {
  static const CpuMicroKernels* best = [] {
    const CpuMicroKernels* avx512 = avx512_micro_kernels();
    return avx512 ? avx512 : &kScalar;
  }();
  return *best;
}

}  // namespace attnc::cpu
