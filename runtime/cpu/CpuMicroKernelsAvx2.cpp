// The AVX2 + FMA micro-kernels: the fp32 set for x86-64 CPUs without AVX-512 (and, forced with
// ATTNC_CPU_ISA=avx2, a path the tests check on any machine that has AVX2). Target attributes, not
// -mavx2, so the library still runs on older CPUs; avx2_micro_kernels() checks the CPU first.
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/RowBlocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#define ATTNC_AVX2 __attribute__((target("avx2,fma")))

namespace attnc::cpu {

namespace {

constexpr int kRows = 6;  // rows of the register block
constexpr int kVecs = 2;  // 8-float vectors of the register block: 6 x 16 floats in 12 registers

// Lane i of the mask is all ones for i < remaining (maskload / maskstore read the sign bit).
ATTNC_AVX2 inline __m256i tail_mask(int32_t remaining) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(std::min(remaining, 8)), lanes);
}

// C[R x 8 V] (=|+=) A[R x k] * B[k x 8 V], A's element (r, kk) at a[r rs + kk cs] (A itself or the
// transpose of a stored matrix, as in the AVX-512 kernels); the last vector covers the lanes of `last`.
template <int R, int V>
ATTNC_AVX2 void gemm_block(int32_t k, const float* a, int64_t rs, int64_t cs, const float* b, int64_t ldb, float* c,
                           int64_t ldc,
                           bool accumulate, __m256i last) {
  __m256 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      acc[r][v] = !accumulate  ? _mm256_setzero_ps()
                  : v == V - 1 ? _mm256_maskload_ps(c + r * ldc + 8 * v, last)
                               : _mm256_loadu_ps(c + r * ldc + 8 * v);
    }
  }
  for (int32_t kk = 0; kk < k; ++kk) {
    const float* b_row = b + kk * ldb;
    __m256 bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      bv[v] = v == V - 1 ? _mm256_maskload_ps(b_row + 8 * v, last) : _mm256_loadu_ps(b_row + 8 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * rs + kk * cs);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      if (v == V - 1) {
        _mm256_maskstore_ps(c + r * ldc + 8 * v, last, acc[r][v]);
      } else {
        _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
      }
    }
  }
}

using BlockFn = void (*)(int32_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, bool, __m256i);

template <int R>
constexpr BlockFn block_for_vecs(int v) {
  return v == 1 ? gemm_block<R, 1> : gemm_block<R, 2>;
}

BlockFn block_for(int rows, int vecs) {
  switch (rows) {
    case 1: return block_for_vecs<1>(vecs);
    case 2: return block_for_vecs<2>(vecs);
    case 3: return block_for_vecs<3>(vecs);
    case 4: return block_for_vecs<4>(vecs);
    case 5: return block_for_vecs<5>(vecs);
    default: return block_for_vecs<6>(vecs);
  }
}

ATTNC_AVX2 void gemm_strided_avx2(int32_t m, int32_t n, int32_t k, const float* a, int64_t rs, int64_t cs,
                                  const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int32_t j0 = 0; j0 < n; j0 += 8 * kVecs) {
    const int32_t width = std::min<int32_t>(8 * kVecs, n - j0);
    const int vecs = (width + 7) / 8;
    const __m256i last = tail_mask(width - 8 * (vecs - 1));
    const BlockFn full = block_for(kRows, vecs);
    for_each_row_block(m, kRows, [&](int32_t i0, int32_t rows) {
      (rows == kRows ? full : block_for(rows, vecs))(k, a + i0 * rs, rs, cs, b + j0, ldb, c + i0 * ldc + j0, ldc,
                                                      accumulate, last);
    });
  }
}

ATTNC_AVX2 void gemm_avx2(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* c, int64_t ldc, bool accumulate) {
  gemm_strided_avx2(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate);
}

ATTNC_AVX2 void gemm_at_avx2(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, bool accumulate) {
  gemm_strided_avx2(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate);
}

// 2^x for fp32 lanes, as the AVX-512 version (the same degree-7 polynomial of the fraction, error
// under fp32 rounding): results below 2^-126 are exactly 0 (so -inf gives 0), NaN stays NaN. The
// power of two is built in the exponent bits, since AVX2 has no vscalefps.
ATTNC_AVX2 inline __m256 exp2_ps(__m256 x) {
  const __m256 lowest = _mm256_set1_ps(-126.0f);
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 keep = _mm256_cmp_ps(x, lowest, _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lowest), _mm256_set1_ps(127.0f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.5252733804059841e-05f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381609e-04f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 result = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(exponent)), keep);
  return _mm256_blendv_ps(result, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), nan);
}

ATTNC_AVX2 inline float reduce_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

ATTNC_AVX2 inline float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

ATTNC_AVX2 void softmax_tile_avx2(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max,
                                  float* row_sum, float* row_alpha) {
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  const __m256 minus_inf = _mm256_set1_ps(kMinusInf);
  const __m256 cv = _mm256_set1_ps(c);
  for (int32_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    __m256 mv = minus_inf;
    bool any_nan = false;
    for (int32_t j = 0; j < cols; j += 8) {
      const __m256i mask = tail_mask(cols - j);
      const __m256 x = _mm256_blendv_ps(minus_inf, _mm256_maskload_ps(row + j, mask), _mm256_castsi256_ps(mask));
      any_nan |= _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0;
      mv = _mm256_max_ps(x, mv);  // the second operand wins for NaN: NaN scores are ignored
    }
    float m = std::max(row_max[r], reduce_max(mv));  // a NaN row_max stays NaN
    if (m == kMinusInf) {
      // Nothing kept in this tile so far, unless a kept score is NaN (docs/semantics.md).
      if (!any_nan) {
        for (int32_t j = 0; j < cols; j += 8) _mm256_maskstore_ps(row + j, tail_mask(cols - j), _mm256_setzero_ps());
        row_alpha[r] = 1.0f;
        continue;
      }
      m = std::numeric_limits<float>::quiet_NaN();
    }
    const __m256 mb = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    for (int32_t j = 0; j < cols; j += 8) {
      const __m256i mask = tail_mask(cols - j);
      const __m256 x = _mm256_maskload_ps(row + j, mask);
      const __m256 p = _mm256_and_ps(exp2_ps(_mm256_mul_ps(_mm256_sub_ps(x, mb), cv)), _mm256_castsi256_ps(mask));
      _mm256_maskstore_ps(row + j, mask, p);
      sum = _mm256_add_ps(sum, p);
    }
    row_alpha[r] = std::exp2((row_max[r] - m) * c);  // exp2(-inf) == 0 on the first kept tile
    row_sum[r] = row_sum[r] * row_alpha[r] + reduce_add(sum);
    row_max[r] = m;
  }
}

ATTNC_AVX2 void scale_rows_avx2(float* o, int64_t ldo, int32_t rows, int32_t cols, const float* alpha) {
  for (int32_t r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    float* row = o + r * ldo;
    const __m256 a = _mm256_set1_ps(alpha[r]);
    for (int32_t j = 0; j < cols; j += 8) {
      const __m256i mask = tail_mask(cols - j);
      _mm256_maskstore_ps(row + j, mask, _mm256_mul_ps(a, _mm256_maskload_ps(row + j, mask)));
    }
  }
}

ATTNC_AVX2 void softmax_backward_tile_avx2(const float* p, const float* dp, int64_t ld, int32_t rows, int32_t cols,
                                           const float* delta, float* ds) {
  for (int32_t r = 0; r < rows; ++r) {
    const __m256 d = _mm256_set1_ps(delta[r]);
    for (int32_t j = 0; j < cols; j += 8) {
      const __m256i mask = tail_mask(cols - j);
      const __m256 prob = _mm256_maskload_ps(p + r * ld + j, mask);
      const __m256 kept = _mm256_cmp_ps(prob, _mm256_setzero_ps(), _CMP_NEQ_UQ);
      const __m256 grad = _mm256_sub_ps(_mm256_maskload_ps(dp + r * ld + j, mask), d);
      _mm256_maskstore_ps(ds + r * ld + j, mask, _mm256_and_ps(kept, _mm256_mul_ps(prob, grad)));
    }
  }
}

const CpuMicroKernels kAvx2{CpuIsa::Avx2, "avx2",  gemm_avx2, softmax_tile_avx2, scale_rows_avx2,
                            nullptr,      nullptr, gemm_at_avx2, softmax_backward_tile_avx2,
                            dropout_keep_bits_scalar, dropout_apply_scalar};

}  // namespace

const CpuMicroKernels* avx2_micro_kernels() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &kAvx2 : nullptr;
}

}  // namespace attnc::cpu

#else

namespace attnc::cpu {
const CpuMicroKernels* avx2_micro_kernels() { return nullptr; }
}  // namespace attnc::cpu

#endif
