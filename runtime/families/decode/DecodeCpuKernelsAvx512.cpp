// The AVX-512 decode kernels. Every function carries a target attribute instead of the file being
// compiled with -mavx512f, so the library still runs on CPUs without AVX-512; avx512_decode_kernels()
// checks the CPU before handing these out.
#include "runtime/families/decode/DecodeCpuKernels.h"

#include "runtime/families/decode/DecodeConfig.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

// GCC 12 warns about the deliberately undefined operands inside its own AVX-512 intrinsics
// (_mm512_undefined_ps in max, reduce_add and reduce_max); the warnings are about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cmath>
#include <limits>

#define ATTNC_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
// Helpers whose array arguments must stay in registers: inlined always, or GCC keeps them on the stack.
#define ATTNC_AVX512_INLINE inline __attribute__((always_inline, target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

namespace attnc::decode {

namespace {

ATTNC_AVX512 inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xFFFF)
                         : remaining <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << remaining) - 1);
}

// Asks for the `bytes` of a row of the next tile (DecodeCpuKernels.h, "Prefetching"). prefetcht2 for
// every line measured best on the Zen 4 build machine (bf16 decode 14.4 ms against 17-19 ms for
// prefetcht0 or prefetchnta, and 15-18 ms for one line per row or every other line).
inline void prefetch_row(const void* row, int64_t bytes) {
  const auto* at = static_cast<const char*>(row);
  for (int64_t line = 0; line < bytes; line += 64) _mm_prefetch(at + line, _MM_HINT_T2);
}

// 16 elements (or the `mask`ed first ones, the rest 0) of a contiguous row as fp32.
template <DType T>
ATTNC_AVX512 inline __m512 load_f32(const void* src, int64_t i, __mmask16 mask) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(src) + i);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(src) + i));
  } else {
    // bf16 is the upper half of an fp32.
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(src) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
}

ATTNC_AVX512 inline __m512 load_as_f32(const void* src, DType dtype, int64_t i, __mmask16 mask) {
  switch (dtype) {
    case DType::F32: return load_f32<DType::F32>(src, i, mask);
    case DType::F16: return load_f32<DType::F16>(src, i, mask);
    default: return load_f32<DType::BF16>(src, i, mask);
  }
}

ATTNC_AVX512 void convert_avx512(const void* src, DType dtype, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load_as_f32(src, dtype, i, 0xFFFF));
  if (i < n) {
    const __mmask16 mask = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, mask, load_as_f32(src, dtype, i, mask));
  }
}

// 2^x for x <= 0 (softmax exponents), -inf -> 0 and NaN -> NaN: x = n + f with n = round(x) and
// |f| <= 1/2, 2^f by its degree-7 Taylor polynomial in f ln 2 (relative error below 1e-8), scaled by
// 2^n with vscalefps. Inputs below -160 are clamped there (the result underflows to 0 either way);
// the clamp keeps NaN because maxps returns its second operand when one is NaN.
ATTNC_AVX512 inline __m512 exp2_avx512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-160.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 t = _mm512_mul_ps(_mm512_sub_ps(x, n), _mm512_set1_ps(0.6931471805599453f));
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Level 1: two vectors x, y -> [x0 + x2, x1 + x3, y0 + y2, y1 + y3] in 128-bit blocks.
ATTNC_AVX512_INLINE __m512 halve(__m512 x, __m512 y) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
}

// Level 2: [u0 + u1, u2 + u3, w0 + w1, w2 + w3]: one 4-float block per original vector.
ATTNC_AVX512_INLINE __m512 quarter(__m512 u, __m512 w) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, w, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(u, w, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The 16 dot products of a 4 x 4 block: out lane 4 r + j is the sum of the lanes of acc[r][j].
// Four levels of block shuffles and in-lane unpacks add pairs of vectors (45 operations for 16 sums,
// where a horizontal sum per vector takes about 8 each).
// The accumulators come by value (a_rj): taking the array by reference keeps it on the stack.
ATTNC_AVX512_INLINE __m512 sum_4x4(__m512 a00, __m512 a01, __m512 a02, __m512 a03, __m512 a10, __m512 a11, __m512 a12,
                                   __m512 a13, __m512 a20, __m512 a21, __m512 a22, __m512 a23, __m512 a30, __m512 a31,
                                   __m512 a32, __m512 a33) {
  // t_j, block r: the 4 partial sums of a_rj.
  const __m512 t0 = quarter(halve(a00, a10), halve(a20, a30));
  const __m512 t1 = quarter(halve(a01, a11), halve(a21, a31));
  const __m512 t2 = quarter(halve(a02, a12), halve(a22, a32));
  const __m512 t3 = quarter(halve(a03, a13), halve(a23, a33));
  // Levels 3 and 4: transpose-add inside each block, so block r lane j = the sum of t_j's block r.
  const __m512 m01 = _mm512_add_ps(_mm512_unpacklo_ps(t0, t1), _mm512_unpackhi_ps(t0, t1));
  const __m512 m23 = _mm512_add_ps(_mm512_unpacklo_ps(t2, t3), _mm512_unpackhi_ps(t2, t3));
  const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(m01), _mm512_castps_pd(m23));
  const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(m01), _mm512_castps_pd(m23));
  return _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
}

// RB rows x JB keys of dot products over `dim`, K rows converted in registers.
template <DType T, int RB, int JB>
ATTNC_AVX512 void scores_block(const float* q, int64_t ldq, const void* const* k, int32_t dim, float* s, int64_t lds,
                               const void* const* ahead) {
  if (ahead != nullptr) {
    const int64_t row_bytes = int64_t{dim} * (T == DType::F32 ? 4 : 2);
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) prefetch_row(ahead[j], row_bytes);
  }
  __m512 acc[RB][JB];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int32_t d = 0; d < dim; d += 16) {
    const __mmask16 mask = tail_mask(dim - d);
    __m512 kv[JB];
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) kv[j] = load_f32<T>(k[j], d, mask);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512 qv = _mm512_maskz_loadu_ps(mask, q + r * ldq + d);
#pragma GCC unroll 4
      for (int j = 0; j < JB; ++j) acc[r][j] = _mm512_fmadd_ps(qv, kv[j], acc[r][j]);
    }
  }
  if constexpr (RB == 4 && JB == 4) {
    const __m512 sums = sum_4x4(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1], acc[1][2], acc[1][3],
                                acc[2][0], acc[2][1], acc[2][2], acc[2][3], acc[3][0], acc[3][1], acc[3][2], acc[3][3]);
    _mm_storeu_ps(s, _mm512_extractf32x4_ps(sums, 0));
    _mm_storeu_ps(s + lds, _mm512_extractf32x4_ps(sums, 1));
    _mm_storeu_ps(s + 2 * lds, _mm512_extractf32x4_ps(sums, 2));
    _mm_storeu_ps(s + 3 * lds, _mm512_extractf32x4_ps(sums, 3));
  } else {
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < JB; ++j) s[r * lds + j] = _mm512_reduce_add_ps(acc[r][j]);
    }
  }
}

#define ATTNC_AVX512_BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,fma")))

// RB rows x JB keys of bf16 dot products over `dim`, 32 elements per VDPBF16PS (pairs multiplied
// exactly and summed in fp32), masked at the tail, scaled at the end.
template <int RB, int JB>
ATTNC_AVX512_BF16 void scores_bf16_block(const uint16_t* q, int64_t ldq, const void* const* k, int32_t dim, float scale,
                                         float* s, int64_t lds, const void* const* ahead) {
  if (ahead != nullptr) {
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) prefetch_row(ahead[j], int64_t{dim} * 2);
  }
  __m512 acc[RB][JB];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int32_t d = 0; d < dim; d += 32) {
    const int32_t left = dim - d;
    const __mmask32 mask = left >= 32 ? static_cast<__mmask32>(0xFFFFFFFFu) : static_cast<__mmask32>((1u << left) - 1);
    __m512bh kv[JB];
#pragma GCC unroll 4
    for (int j = 0; j < JB; ++j) {
      kv[j] = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(k[j]) + d));
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512bh qv = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, q + r * ldq + d));
#pragma GCC unroll 4
      for (int j = 0; j < JB; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], qv, kv[j]);
    }
  }
  if constexpr (RB == 4 && JB == 4) {
    const __m512 sums =
        _mm512_mul_ps(_mm512_set1_ps(scale),
                      sum_4x4(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1], acc[1][2], acc[1][3],
                              acc[2][0], acc[2][1], acc[2][2], acc[2][3], acc[3][0], acc[3][1], acc[3][2], acc[3][3]));
    _mm_storeu_ps(s, _mm512_extractf32x4_ps(sums, 0));
    _mm_storeu_ps(s + lds, _mm512_extractf32x4_ps(sums, 1));
    _mm_storeu_ps(s + 2 * lds, _mm512_extractf32x4_ps(sums, 2));
    _mm_storeu_ps(s + 3 * lds, _mm512_extractf32x4_ps(sums, 3));
  } else {
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < JB; ++j) s[r * lds + j] = scale * _mm512_reduce_add_ps(acc[r][j]);
    }
  }
}

// `ahead` is passed on for the first block of rows only: each next-tile row is asked for once.
template <int RB>
ATTNC_AVX512_BF16 void scores_bf16_rows(const uint16_t* q, int64_t ldq, const void* const* k, int32_t cols, int32_t dim,
                                        float scale, float* s, int64_t lds, const void* const* ahead) {
  int32_t j = 0;
  for (; j + 4 <= cols; j += 4) {
    scores_bf16_block<RB, 4>(q, ldq, k + j, dim, scale, s + j, lds, ahead != nullptr ? ahead + j : nullptr);
  }
  for (; j < cols; ++j) {
    scores_bf16_block<RB, 1>(q, ldq, k + j, dim, scale, s + j, lds, ahead != nullptr ? ahead + j : nullptr);
  }
}

ATTNC_AVX512_BF16 void scores_bf16_avx512(const uint16_t* q, int64_t ldq, const void* const* k_rows, int32_t rows,
                                          int32_t cols, int32_t dim, float scale, float* s, int64_t lds,
                                          const void* const* ahead) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4, ahead = nullptr) {
    scores_bf16_rows<4>(q + r * ldq, ldq, k_rows, cols, dim, scale, s + r * lds, lds, ahead);
  }
  for (; r < rows; ++r, ahead = nullptr) {
    scores_bf16_rows<1>(q + r * ldq, ldq, k_rows, cols, dim, scale, s + r * lds, lds, ahead);
  }
}

// accumulate_bf16 (DecodeCpuKernels.h). Keys go in pairs: VDPBF16PS multiplies the 32 bf16 of one
// vector pairwise with another's and adds each pair's two products to one fp32 lane, so a pair of
// weights (p[r][j], p[r][j+1]) broadcast as one 32-bit value meets V rows j and j+1 interleaved
// element by element. The interleave is one vpunpck{l,h}wd each, which works inside 128-bit lanes:
// the "lo" accumulator's lane i holds element 8 (i / 4) + i % 4 of a 32-element chunk and the "hi"
// one element 8 (i / 4) + 4 + i % 4. O is permuted into that order on entry and back on exit.
ATTNC_AVX512_BF16 inline __m512i lo_order() {
  return _mm512_set_epi32(27, 26, 25, 24, 19, 18, 17, 16, 11, 10, 9, 8, 3, 2, 1, 0);
}
ATTNC_AVX512_BF16 inline __m512i hi_order() {
  return _mm512_set_epi32(31, 30, 29, 28, 23, 22, 21, 20, 15, 14, 13, 12, 7, 6, 5, 4);
}
// Natural elements 0-15 and 16-31 of a chunk from (lo, hi): element 8 L + e sits in lo lane 4 L + e
// for e < 4, else in hi lane 4 L + e - 4 (second source: index + 16).
ATTNC_AVX512_BF16 inline __m512i first_half_order() {
  return _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
}
ATTNC_AVX512_BF16 inline __m512i second_half_order() {
  return _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
}

ATTNC_AVX512_BF16 inline __mmask32 tail_mask32(int64_t remaining) {
  return remaining >= 32 ? static_cast<__mmask32>(0xFFFFFFFFu)
                         : remaining <= 0 ? static_cast<__mmask32>(0) : static_cast<__mmask32>((1u << remaining) - 1);
}

// RB rows x C chunks of 32 elements of O from element d, over all `cols` keys; pairs[r][k] holds the
// bf16 weights of keys 2k and 2k + 1 of row r (the odd tail's partner is 0).
template <int RB, int C>
ATTNC_AVX512_BF16 void accumulate_bf16_block(const uint32_t* pairs, int32_t ldpairs, const void* const* v,
                                             int32_t cols, int32_t d, int32_t dim, const float* alpha, float* o,
                                             int64_t ldo, const void* const* ahead) {
  __mmask32 masks[C];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) masks[c] = tail_mask32(int64_t{dim} - d - 32 * c);
  __m512 lo[RB][C], hi[RB][C];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const float* src = o + r * ldo + d + 32 * c;
      const __m512 x0 = _mm512_maskz_loadu_ps(tail_mask(int64_t{dim} - d - 32 * c), src);
      const __m512 x1 = _mm512_maskz_loadu_ps(tail_mask(int64_t{dim} - d - 32 * c - 16), src + 16);
      lo[r][c] = _mm512_mul_ps(a, _mm512_permutex2var_ps(x0, lo_order(), x1));
      hi[r][c] = _mm512_mul_ps(a, _mm512_permutex2var_ps(x0, hi_order(), x1));
    }
  }
  for (int32_t j = 0; j < cols; j += 2) {
    const bool pair = j + 1 < cols;
    if (ahead != nullptr) {
      prefetch_row(ahead[j], int64_t{dim} * 2);
      if (pair) prefetch_row(ahead[j + 1], int64_t{dim} * 2);
    }
    __m512bh vlo[C], vhi[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m512i a = _mm512_maskz_loadu_epi16(masks[c], static_cast<const uint16_t*>(v[j]) + d + 32 * c);
      const __m512i b =
          pair ? _mm512_maskz_loadu_epi16(masks[c], static_cast<const uint16_t*>(v[j + 1]) + d + 32 * c)
               : _mm512_setzero_si512();
      vlo[c] = reinterpret_cast<__m512bh>(_mm512_unpacklo_epi16(a, b));
      vhi[c] = reinterpret_cast<__m512bh>(_mm512_unpackhi_epi16(a, b));
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512bh w = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pairs[r * ldpairs + j / 2])));
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        lo[r][c] = _mm512_dpbf16_ps(lo[r][c], w, vlo[c]);
        hi[r][c] = _mm512_dpbf16_ps(hi[r][c], w, vhi[c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      float* dst = o + r * ldo + d + 32 * c;
      _mm512_mask_storeu_ps(dst, tail_mask(int64_t{dim} - d - 32 * c),
                            _mm512_permutex2var_ps(lo[r][c], first_half_order(), hi[r][c]));
      _mm512_mask_storeu_ps(dst + 16, tail_mask(int64_t{dim} - d - 32 * c - 16),
                            _mm512_permutex2var_ps(lo[r][c], second_half_order(), hi[r][c]));
    }
  }
}

// Up to 4 rows of p rounded to bf16 pairs (zero past cols), then their part of O.
template <int RB>
ATTNC_AVX512_BF16 void accumulate_bf16_rows(const float* p, int64_t ldp, const void* const* v, int32_t cols,
                                            int32_t dim, const float* alpha, float* o, int64_t ldo,
                                            const void* const* ahead) {
  constexpr int32_t kMaxPairs = kDecodeBlockN / 2;
  alignas(64) uint32_t pairs[RB][kMaxPairs];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    for (int32_t j = 0; j < cols; j += 32) {
      const __m512 x0 = _mm512_maskz_loadu_ps(tail_mask(cols - j), p + r * ldp + j);
      const __m512 x1 = _mm512_maskz_loadu_ps(tail_mask(cols - j - 16), p + r * ldp + j + 16);
      _mm512_store_si512(&pairs[r][j / 2], reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0)));
    }
  }
  for (int32_t d = 0; d < dim; d += 64, ahead = nullptr) {
    if (dim - d > 32) {
      accumulate_bf16_block<RB, 2>(&pairs[0][0], kMaxPairs, v, cols, d, dim, alpha, o, ldo, ahead);
    } else {
      accumulate_bf16_block<RB, 1>(&pairs[0][0], kMaxPairs, v, cols, d, dim, alpha, o, ldo, ahead);
    }
  }
}

ATTNC_AVX512_BF16 void accumulate_bf16_avx512(const float* p, int64_t ldp, const void* const* v_rows, int32_t rows,
                                              int32_t cols, int32_t dim, const float* alpha, float* o, int64_t ldo,
                                              const void* const* ahead) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4, ahead = nullptr) {
    accumulate_bf16_rows<4>(p + r * ldp, ldp, v_rows, cols, dim, alpha + r, o + r * ldo, ldo, ahead);
  }
  for (; r < rows; ++r, ahead = nullptr) {
    accumulate_bf16_rows<1>(p + r * ldp, ldp, v_rows, cols, dim, alpha + r, o + r * ldo, ldo, ahead);
  }
}

template <DType T, int RB>
ATTNC_AVX512 void scores_rows(const float* q, int64_t ldq, const void* const* k, int32_t cols, int32_t dim, float* s,
                              int64_t lds, const void* const* ahead) {
  int32_t j = 0;
  for (; j + 4 <= cols; j += 4) scores_block<T, RB, 4>(q, ldq, k + j, dim, s + j, lds, ahead != nullptr ? ahead + j : nullptr);
  for (; j < cols; ++j) scores_block<T, RB, 1>(q, ldq, k + j, dim, s + j, lds, ahead != nullptr ? ahead + j : nullptr);
}

template <DType T>
ATTNC_AVX512 void scores_typed(const float* q, int64_t ldq, const void* const* k, int32_t rows, int32_t cols,
                               int32_t dim, float* s, int64_t lds, const void* const* ahead) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4, ahead = nullptr) scores_rows<T, 4>(q + r * ldq, ldq, k, cols, dim, s + r * lds, lds, ahead);
  for (; r < rows; ++r, ahead = nullptr) scores_rows<T, 1>(q + r * ldq, ldq, k, cols, dim, s + r * lds, lds, ahead);
}

ATTNC_AVX512 void scores_avx512(const float* q, int64_t ldq, const void* const* k_rows, DType dtype, int32_t rows,
                                int32_t cols, int32_t dim, float* s, int64_t lds, const void* const* ahead) {
  switch (dtype) {
    case DType::F32: scores_typed<DType::F32>(q, ldq, k_rows, rows, cols, dim, s, lds, ahead); return;
    case DType::F16: scores_typed<DType::F16>(q, ldq, k_rows, rows, cols, dim, s, lds, ahead); return;
    default: scores_typed<DType::BF16>(q, ldq, k_rows, rows, cols, dim, s, lds, ahead); return;
  }
}

ATTNC_AVX512 void softmax_avx512(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max,
                                 float* row_sum, float* row_alpha) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (int32_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    __m512 mv = _mm512_set1_ps(row_max[r]);
    for (int32_t j = 0; j < cols; j += 16) {
      const __mmask16 mask = tail_mask(cols - j);
      // maxps returns its second operand when either is NaN: NaN scores are ignored.
      mv = _mm512_mask_max_ps(mv, mask, _mm512_maskz_loadu_ps(mask, row + j), mv);
    }
    const float m = _mm512_reduce_max_ps(mv);
    __m512 sum = _mm512_setzero_ps();
    if (m == minus_inf) {
      // Nothing kept yet: weights 0, NaN kept as NaN; no rescale.
      for (int32_t j = 0; j < cols; j += 16) {
        const __mmask16 mask = tail_mask(cols - j);
        const __m512 x = _mm512_maskz_loadu_ps(mask, row + j);
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        const __m512 p = _mm512_maskz_mov_ps(nan, x);
        _mm512_mask_storeu_ps(row + j, mask, p);
        sum = _mm512_add_ps(sum, p);
      }
      row_alpha[r] = 1.0f;
    } else {
      const __m512 mm = _mm512_set1_ps(m), cc = _mm512_set1_ps(c);
      for (int32_t j = 0; j < cols; j += 16) {
        const __mmask16 mask = tail_mask(cols - j);
        const __m512 x = _mm512_maskz_loadu_ps(mask, row + j);
        const __m512 p = _mm512_maskz_mov_ps(mask, exp2_avx512(_mm512_mul_ps(_mm512_sub_ps(x, mm), cc)));
        _mm512_mask_storeu_ps(row + j, mask, p);
        sum = _mm512_add_ps(sum, p);
      }
      row_alpha[r] = std::exp2((row_max[r] - m) * c);
    }
    row_sum[r] = row_sum[r] * row_alpha[r] + _mm512_reduce_add_ps(sum);
    row_max[r] = m;
  }
}

// RB rows x V vectors of O (16 V columns from `d`), rescaled by alpha, plus P V over all keys, the
// V rows converted in registers once per block of rows.
template <DType T, int RB, int V>
ATTNC_AVX512 void accumulate_block(const float* p, int64_t ldp, const void* const* v, int32_t cols, int32_t d,
                                   int32_t dim, const float* alpha, float* o, int64_t ldo, const void* const* ahead) {
  const int64_t row_bytes = int64_t{dim} * (T == DType::F32 ? 4 : 2);
  __mmask16 masks[V];
#pragma GCC unroll 4
  for (int c = 0; c < V; ++c) masks[c] = tail_mask(int64_t{dim} - d - 16 * c);
  __m512 acc[RB][V];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) acc[r][c] = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(masks[c], o + r * ldo + d + 16 * c));
  }
  for (int32_t j = 0; j < cols; ++j) {
    if (ahead != nullptr) prefetch_row(ahead[j], row_bytes);
    __m512 vv[V];
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) vv[c] = load_f32<T>(v[j], d + 16 * c, masks[c]);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
      for (int c = 0; c < V; ++c) acc[r][c] = _mm512_fmadd_ps(w, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) _mm512_mask_storeu_ps(o + r * ldo + d + 16 * c, masks[c], acc[r][c]);
  }
}

// `ahead` goes with the first pass over the keys only (the first column block of the first rows).
template <DType T, int RB>
ATTNC_AVX512 void accumulate_rows(const float* p, int64_t ldp, const void* const* v, int32_t cols, int32_t dim,
                                  const float* alpha, float* o, int64_t ldo, const void* const* ahead) {
  for (int32_t d = 0; d < dim; d += 64, ahead = nullptr) {
    const int32_t left = dim - d;
    if (left > 48) {
      accumulate_block<T, RB, 4>(p, ldp, v, cols, d, dim, alpha, o, ldo, ahead);
    } else if (left > 32) {
      accumulate_block<T, RB, 3>(p, ldp, v, cols, d, dim, alpha, o, ldo, ahead);
    } else if (left > 16) {
      accumulate_block<T, RB, 2>(p, ldp, v, cols, d, dim, alpha, o, ldo, ahead);
    } else {
      accumulate_block<T, RB, 1>(p, ldp, v, cols, d, dim, alpha, o, ldo, ahead);
    }
  }
}

template <DType T>
ATTNC_AVX512 void accumulate_typed(const float* p, int64_t ldp, const void* const* v, int32_t rows, int32_t cols,
                                   int32_t dim, const float* alpha, float* o, int64_t ldo, const void* const* ahead) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4, ahead = nullptr) {
    accumulate_rows<T, 4>(p + r * ldp, ldp, v, cols, dim, alpha + r, o + r * ldo, ldo, ahead);
  }
  for (; r < rows; ++r, ahead = nullptr) {
    accumulate_rows<T, 1>(p + r * ldp, ldp, v, cols, dim, alpha + r, o + r * ldo, ldo, ahead);
  }
}

ATTNC_AVX512 void accumulate_avx512(const float* p, int64_t ldp, const void* const* v_rows, DType dtype, int32_t rows,
                                    int32_t cols, int32_t dim, const float* alpha, float* o, int64_t ldo,
                                    const void* const* ahead) {
  switch (dtype) {
    case DType::F32: accumulate_typed<DType::F32>(p, ldp, v_rows, rows, cols, dim, alpha, o, ldo, ahead); return;
    case DType::F16: accumulate_typed<DType::F16>(p, ldp, v_rows, rows, cols, dim, alpha, o, ldo, ahead); return;
    default: accumulate_typed<DType::BF16>(p, ldp, v_rows, rows, cols, dim, alpha, o, ldo, ahead); return;
  }
}

const DecodeCpuKernels kAvx512{"avx512",        convert_avx512,    scores_avx512, nullptr,
                               softmax_avx512, accumulate_avx512, nullptr};
const DecodeCpuKernels kAvx512Bf16{"avx512+bf16",  convert_avx512,    scores_avx512,         scores_bf16_avx512,
                                   softmax_avx512, accumulate_avx512, accumulate_bf16_avx512};

}  // namespace

const DecodeCpuKernels* avx512_decode_kernels() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  static const bool bf16 = supported && __builtin_cpu_supports("avx512bf16");
  return !supported ? nullptr : bf16 ? &kAvx512Bf16 : &kAvx512;
}

}  // namespace attnc::decode

#else

namespace attnc::decode {
const DecodeCpuKernels* avx512_decode_kernels() { return nullptr; }
}  // namespace attnc::decode

#endif
