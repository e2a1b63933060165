#pragma once
// The inner loops of the CPU flash kernel (runtime/families/flash/FlashCpu.cpp), behind a table of
// function pointers so one binary carries several instruction sets and picks one at run time:
// AVX-512 where the CPU has it (compiled with target attributes, so the library still runs on
// older CPUs), portable scalar C++ everywhere else.
//
// All matrices are fp32, row-major, with leading dimensions in elements (any sign, may be 0).

#include <cstdint>

namespace attnc::cpu {

struct CpuMicroKernels {
  const char* name;  // "avx512" or "scalar"

  // c[m x n] = a[m x k] * b[k x n], or c += a * b with `accumulate`. Register-blocked; any m, n, k
  // (k == 0 gives zeros / leaves c unchanged).
  void (*gemm)(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
               int64_t ldc, bool accumulate);

  // One online-softmax step over a tile of scores s[rows x cols] (row stride lds). For each row r,
  // with `c` the factor that turns a score into a base-2 exponent (1 when log2(e) is already folded
  // into the scores, log2(e) otherwise):
  //   m' = max(row_max[r], max_j s[r][j])          (NaN scores are ignored by the max)
  //   s[r][j] = exp2((s[r][j] - m') * c),  row_alpha[r] = exp2((row_max[r] - m') * c)
  //   row_sum[r] = row_sum[r] * row_alpha[r] + sum_j s[r][j],  row_max[r] = m'
  // A row whose max stays -inf (everything masked so far) gets s = 0 and alpha = 1 instead of the
  // NaN that exp2(-inf - -inf) would give.
  void (*softmax_tile)(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max, float* row_sum,
                       float* row_alpha);

  // o[r][0..cols) *= alpha[r] for every row whose alpha is not 1.
  void (*scale_rows)(float* o, int64_t ldo, int32_t rows, int32_t cols, const float* alpha);
};

// The portable kernels.
const CpuMicroKernels& scalar_micro_kernels();
// The AVX-512 kernels, or nullptr when this build or this CPU lacks AVX-512 (F, DQ, BW, VL).
const CpuMicroKernels* avx512_micro_kernels();
// The fastest kernels this CPU runs (decided once).
const CpuMicroKernels& best_micro_kernels();

}  // namespace attnc::cpu
