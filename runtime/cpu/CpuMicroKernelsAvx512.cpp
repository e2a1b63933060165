// The AVX-512 micro-kernels, and the bf16 products of AVX512-BF16. Every function carries a target
// attribute instead of the file being compiled with -mavx512f, so the rest of the library (and this
// file's callers) stay runnable on CPUs without AVX-512; the table getters check the CPU before
// handing these out.
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/RowBlocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

// GCC 12 warns about the deliberately undefined source operand inside its own AVX-512 intrinsics
// (_mm512_undefined_ps in max / min / roundscale); the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#define ATTNC_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define ATTNC_AVX512_BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,fma")))

namespace attnc::cpu {

namespace {

constexpr int kRows = 6;  // rows of the register block
constexpr int kVecs = 4;  // 16-float vectors of the register block: 6 x 64 floats in 24 registers

ATTNC_AVX512 inline __mmask16 tail_mask(int32_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1);
}

// C[R x 16 V] (=|+=) A[R x k] * B[k x 16 V], A's element (r, kk) at a[r rs + kk cs] (rs = lda, cs = 1
// for A itself; rs = 1, cs = lda for the transpose of a stored k x R matrix: six consecutive floats
// broadcast per kk either way); the last vector covers `last` lanes (masked).
template <int R, int V>
ATTNC_AVX512 void gemm_block(int32_t k, const float* a, int64_t rs, int64_t cs, const float* b, int64_t ldb, float* c,
                           int64_t ldc,
                             bool accumulate, __mmask16 last) {
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(mask, c + r * ldc + 16 * v) : _mm512_setzero_ps();
    }
  }
  for (int32_t kk = 0; kk < k; ++kk) {
    const float* b_row = b + kk * ldb;
    __m512 bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      bv[v] = v == V - 1 ? _mm512_maskz_loadu_ps(last, b_row + 16 * v) : _mm512_loadu_ps(b_row + 16 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * rs + kk * cs]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask, acc[r][v]);
    }
  }
}

using BlockFn = void (*)(int32_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, bool,
                         __mmask16);

template <int R>
constexpr BlockFn block_for_vecs(int v) {
  switch (v) {
    case 1: return gemm_block<R, 1>;
    case 2: return gemm_block<R, 2>;
    case 3: return gemm_block<R, 3>;
    default: return gemm_block<R, 4>;
  }
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

// C (=|+=) A B with A's element (i, kk) at a[i rs + kk cs].
ATTNC_AVX512 void gemm_strided_avx512(int32_t m, int32_t n, int32_t k, const float* a, int64_t rs, int64_t cs,
                                      const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int32_t j0 = 0; j0 < n; j0 += 16 * kVecs) {
    const int32_t width = std::min<int32_t>(16 * kVecs, n - j0);
    const int vecs = (width + 15) / 16;
    const __mmask16 last = tail_mask(width - 16 * (vecs - 1));
    const BlockFn full = block_for(kRows, vecs);
    for_each_row_block(m, kRows, [&](int32_t i0, int32_t rows) {
      (rows == kRows ? full : block_for(rows, vecs))(k, a + i0 * rs, rs, cs, b + j0, ldb, c + i0 * ldc + j0, ldc,
                                                      accumulate, last);
    });
  }
}

ATTNC_AVX512 void gemm_avx512(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                              float* c, int64_t ldc, bool accumulate) {
  gemm_strided_avx512(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate);
}

ATTNC_AVX512 void gemm_at_avx512(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b,
                                 int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  gemm_strided_avx512(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate);
}

// 2^x for fp32 lanes: x = n + f with n an integer and |f| <= 1/2, 2^f by its Taylor polynomial of
// degree 7 (relative error below 1e-8, under fp32 rounding), then scaled by 2^n. Results below
// 2^-126 become exactly 0 (so -inf gives 0 and no denormals are made); NaN stays NaN.
ATTNC_AVX512 inline __m512 exp2_ps(__m512 x) {
  const __m512 lowest = _mm512_set1_ps(-126.0f);
  const __mmask16 keep = _mm512_cmp_ps_mask(x, lowest, _CMP_NLT_UQ);  // x >= -126 or NaN
  x = _mm512_max_ps(lowest, x);                                       // the second operand wins for NaN
  x = _mm512_min_ps(_mm512_set1_ps(128.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5252733804059841e-05f);  // ln2^7 / 7!
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381609e-04f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(keep, p, n);
}

ATTNC_AVX512 void softmax_tile_avx512(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max,
                                      float* row_sum, float* row_alpha) {
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  const __m512 minus_inf = _mm512_set1_ps(kMinusInf);
  const __m512 cv = _mm512_set1_ps(c);
  for (int32_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    __m512 mv = minus_inf;
    for (int32_t j = 0; j < cols; j += 16) {
      const __m512 x = _mm512_mask_loadu_ps(minus_inf, tail_mask(cols - j), row + j);
      mv = _mm512_max_ps(x, mv);  // the second operand wins for NaN: NaN scores are ignored
    }
    float m = std::max(row_max[r], _mm512_reduce_max_ps(mv));  // a NaN row_max stays NaN
    if (m == kMinusInf) {
      // Nothing kept in this tile so far, unless a kept score is NaN: then the row is NaN
      // (docs/semantics.md), which a NaN max carries through every later tile and the output.
      __mmask16 nan = 0;
      for (int32_t j = 0; j < cols; j += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(tail_mask(cols - j), row + j);
        nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      }
      if (nan == 0) {
        for (int32_t j = 0; j < cols; j += 16) _mm512_mask_storeu_ps(row + j, tail_mask(cols - j), _mm512_setzero_ps());
        row_alpha[r] = 1.0f;
        continue;
      }
      m = std::numeric_limits<float>::quiet_NaN();
    }
    const __m512 mb = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int32_t j = 0; j < cols; j += 16) {
      const __mmask16 mask = tail_mask(cols - j);
      const __m512 x = _mm512_maskz_loadu_ps(mask, row + j);
      const __m512 p = _mm512_maskz_mov_ps(mask, exp2_ps(_mm512_mul_ps(_mm512_sub_ps(x, mb), cv)));
      _mm512_mask_storeu_ps(row + j, mask, p);
      sum = _mm512_add_ps(sum, p);
    }
    row_alpha[r] = std::exp2((row_max[r] - m) * c);  // exp2(-inf) == 0 on the first kept tile
    row_sum[r] = row_sum[r] * row_alpha[r] + _mm512_reduce_add_ps(sum);
    row_max[r] = m;
  }
}

ATTNC_AVX512 void scale_rows_avx512(float* o, int64_t ldo, int32_t rows, int32_t cols, const float* alpha) {
  for (int32_t r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    float* row = o + r * ldo;
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int32_t j = 0; j < cols; j += 16) {
      const __mmask16 mask = tail_mask(cols - j);
      _mm512_mask_storeu_ps(row + j, mask, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mask, row + j)));
    }
  }
}

// ---- bf16 products (AVX512-BF16) ----

// C[R x 16 V] (=alpha * | +=) A[R x kp pairs] * B[kp pairs x 16 V]; the last vector covers `last`
// lanes (masked). One vdpbf16ps per (row, vector, pair): two multiply-adds per lane.
template <int R, int V>
ATTNC_AVX512_BF16 void gemm_bf16_block(int32_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                                       float* c, int64_t ldc, bool accumulate, float alpha, __mmask16 last) {
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(mask, c + r * ldc + 16 * v) : _mm512_setzero_ps();
    }
  }
  for (int32_t p = 0; p < kp; ++p) {
    const uint32_t* b_row = b + p * ldb;
    __m512bh bv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __m512i bits = v == V - 1 ? _mm512_maskz_loadu_epi32(last, b_row + 16 * v)
                                      : _mm512_loadu_si512(static_cast<const void*>(b_row + 16 * v));
      bv[v] = reinterpret_cast<const __m512bh&>(bits);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i pair = _mm512_set1_epi32(static_cast<int>(a[r * lda + p]));
      const __m512bh av = reinterpret_cast<const __m512bh&>(pair);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      const __mmask16 mask = v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask, accumulate ? acc[r][v] : _mm512_mul_ps(scale, acc[r][v]));
    }
  }
}

using Bf16BlockFn = void (*)(int32_t, const uint32_t*, int64_t, const uint32_t*, int64_t, float*, int64_t, bool, float,
                             __mmask16);

template <int R>
constexpr Bf16BlockFn bf16_block_for_vecs(int v) {
  switch (v) {
    case 1: return gemm_bf16_block<R, 1>;
    case 2: return gemm_bf16_block<R, 2>;
    case 3: return gemm_bf16_block<R, 3>;
    default: return gemm_bf16_block<R, 4>;
  }
}

Bf16BlockFn bf16_block_for(int rows, int vecs) {
  switch (rows) {
    case 1: return bf16_block_for_vecs<1>(vecs);
    case 2: return bf16_block_for_vecs<2>(vecs);
    case 3: return bf16_block_for_vecs<3>(vecs);
    case 4: return bf16_block_for_vecs<4>(vecs);
    case 5: return bf16_block_for_vecs<5>(vecs);
    default: return bf16_block_for_vecs<6>(vecs);
  }
}

ATTNC_AVX512_BF16 void gemm_bf16_avx512(int32_t m, int32_t n, int32_t kp, const uint32_t* a, int64_t lda,
                                        const uint32_t* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                                        float alpha) {
  for (int32_t j0 = 0; j0 < n; j0 += 16 * kVecs) {
    const int32_t width = std::min<int32_t>(16 * kVecs, n - j0);
    const int vecs = (width + 15) / 16;
    const __mmask16 last = tail_mask(width - 16 * (vecs - 1));
    const Bf16BlockFn full = bf16_block_for(kRows, vecs);
    int32_t i0 = 0;
    for (; i0 + kRows <= m; i0 += kRows) {
      full(kp, a + i0 * lda, lda, b + j0, ldb, c + i0 * ldc + j0, ldc, accumulate, alpha, last);
    }
    if (i0 < m) {
      bf16_block_for(m - i0, vecs)(kp, a + i0 * lda, lda, b + j0, ldb, c + i0 * ldc + j0, ldc, accumulate, alpha,
                                   last);
    }
  }
}

ATTNC_AVX512_BF16 void round_to_bf16_avx512(const float* src, int64_t lds, int32_t rows, int32_t cols, uint16_t* dst,
                                            int64_t ldd, int32_t padded) {
  for (int32_t r = 0; r < rows; ++r) {
    const float* in = src + r * lds;
    uint16_t* out = dst + r * ldd;
    for (int32_t j = 0; j < padded; j += 16) {
      // Lanes at or past `cols` are loaded as 0, which rounds to bf16 0: the padding.
      const __m512 x = _mm512_maskz_loadu_ps(tail_mask(cols - j), in + j);
      const __m256bh h = _mm512_cvtneps_pbh(x);
      _mm256_mask_storeu_epi16(out + j, tail_mask(padded - j), reinterpret_cast<const __m256i&>(h));
    }
  }
}

ATTNC_AVX512 void softmax_backward_tile_avx512(const float* p, const float* dp, int64_t ld, int32_t rows,
                                               int32_t cols, const float* delta, float* ds) {
  for (int32_t r = 0; r < rows; ++r) {
    const __m512 d = _mm512_set1_ps(delta[r]);
    for (int32_t j = 0; j < cols; j += 16) {
      const __mmask16 mask = tail_mask(cols - j);
      const __m512 prob = _mm512_maskz_loadu_ps(mask, p + r * ld + j);
      const __mmask16 kept = _mm512_mask_cmp_ps_mask(mask, prob, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      const __m512 grad = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, dp + r * ld + j), d);
      _mm512_mask_storeu_ps(ds + r * ld + j, mask, _mm512_maskz_mul_ps(kept, prob, grad));
    }
  }
}

// The high 32 bits of x[i] * m for 16 unsigned lanes: vpmuludq multiplies the even lanes (as the
// low halves of 64-bit lanes) and, after a shift, the odd ones.
ATTNC_AVX512 inline __m512i mulhi_epu32(__m512i x, __m512i m) {
  const __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(x, m), 32);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), m);
  return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}

// dropout_keep_bits with 16 keys per vector: Philox4x32-10 (runtime/core/Dropout.h) on counters
// (kv_first + c .. + 15, q_idx, h, b), the round keys shared by every lane.
ATTNC_AVX512 void dropout_keep_bits_avx512(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_first,
                                           int32_t rows, int32_t kv_first, int32_t cols, uint64_t* bits) {
  const __m512i mul0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i mul1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m512i k0[10], k1[10];
  uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    k0[round] = _mm512_set1_epi32(static_cast<int>(key0));
    k1[round] = _mm512_set1_epi32(static_cast<int>(key1));
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Unsigned comparison: draw >= threshold.
  const __m512i limit = _mm512_set1_epi32(static_cast<int>(threshold));
  for (int32_t r = 0; r < rows; ++r) {
    uint64_t row = 0;
    for (int32_t c = 0; c < cols; c += 16) {
      __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(kv_first + c), lanes);
      __m512i c1 = _mm512_set1_epi32(q_first + r), c2 = _mm512_set1_epi32(h), c3 = _mm512_set1_epi32(b);
#pragma GCC unroll 10
      for (int round = 0; round < 10; ++round) {
        const __m512i hi0 = mulhi_epu32(c0, mul0), lo0 = _mm512_mullo_epi32(c0, mul0);
        const __m512i hi1 = mulhi_epu32(c2, mul1), lo1 = _mm512_mullo_epi32(c2, mul1);
        c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), k0[round]);
        c1 = lo1;
        c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), k1[round]);
        c3 = lo0;
      }
      const __mmask16 keep = _mm512_cmp_epu32_mask(c0, limit, _MM_CMPINT_NLT) & tail_mask(cols - c);
      row |= uint64_t{keep} << c;
    }
    bits[r] = row;
  }
}

ATTNC_AVX512 void dropout_apply_avx512(const float* src, float* dst, int64_t ld, int32_t rows, int32_t cols,
                                       const uint64_t* bits, float scale) {
  const __m512 factor = _mm512_set1_ps(scale);
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t c = 0; c < cols; c += 16) {
      const __mmask16 in = tail_mask(cols - c);
      const auto keep = static_cast<__mmask16>(bits[r] >> c);
      const __m512 x = _mm512_maskz_loadu_ps(in, src + r * ld + c);
      _mm512_mask_storeu_ps(dst + r * ld + c, in, _mm512_maskz_mul_ps(keep, x, factor));
    }
  }
}

const CpuMicroKernels kAvx512{CpuIsa::Avx512,      "avx512",          gemm_avx512, softmax_tile_avx512,
                              scale_rows_avx512,   nullptr,           nullptr,     gemm_at_avx512,
                              softmax_backward_tile_avx512, dropout_keep_bits_avx512,
                              dropout_apply_avx512};
const CpuMicroKernels kAvx512Bf16{CpuIsa::Avx512Bf16,  "avx512-bf16",     gemm_avx512,          softmax_tile_avx512,
                                  scale_rows_avx512,   gemm_bf16_avx512,  round_to_bf16_avx512, gemm_at_avx512,
                                  softmax_backward_tile_avx512, dropout_keep_bits_avx512,
                              dropout_apply_avx512};

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

}  // namespace

const CpuMicroKernels* avx512_micro_kernels() { return has_avx512() ? &kAvx512 : nullptr; }

const CpuMicroKernels* avx512_bf16_micro_kernels() {
  return has_avx512() && __builtin_cpu_supports("avx512bf16") ? &kAvx512Bf16 : nullptr;
}

}  // namespace attnc::cpu

#else

namespace attnc::cpu {
const CpuMicroKernels* avx512_micro_kernels() { return nullptr; }
const CpuMicroKernels* avx512_bf16_micro_kernels() { return nullptr; }
}  // namespace attnc::cpu

#endif
