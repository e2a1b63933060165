#pragma once
// The inner loops of the CPU decode kernel (runtime/families/decode/DecodeCpu.cpp), behind a table
// of function pointers so one binary carries AVX-512 (functions with target attributes, chosen at
// run time) and portable scalar C++. They are the decode family's own: the flash family's
// micro-kernels are shaped for 64-row tiles, while a decode tile has a few rows (G q_len) and
// streams its keys once, so here the scores are dot products over the head dim (no packing of K)
// and P V is fused with the softmax rescale of O.
//
// Matrices are fp32, row-major, leading dimensions in elements.
//
// Prefetching. Decoding streams K and V from memory once, and on a core that computes between its
// loads the hardware prefetchers do not keep enough misses in flight (nor follow a paged cache from
// one page to the next). So the kernels that read K or V rows also take `ahead`: the rows of the
// next tile (as many as `cols`, or null for none), and ask the caches for them while they compute,
// a few lines per key, so the loads meet the caches instead of memory.

#include <cstdint>

#include "compiler/DType.h"

namespace attnc::decode {

struct DecodeCpuKernels {
  const char* name;  // "avx512+bf16", "avx512" or "scalar"

  // dst[i] = src[i] as fp32 for i < n; src is contiguous fp32, fp16 or bf16.
  void (*convert)(const void* src, DType dtype, int64_t n, float* dst);

  // s[r * lds + j] = sum_d q[r * ldq + d] * k_rows[j][d] for r < rows, j < cols, d < dim: K rows are
  // read in place (contiguous rows of `dtype`: fp32, fp16 or bf16, converted in registers).
  void (*scores)(const float* q, int64_t ldq, const void* const* k_rows, DType dtype, int32_t rows, int32_t cols,
                 int32_t dim, float* s, int64_t lds, const void* const* ahead);

  // The scores of bf16 query rows (q_bf16, unscaled, row stride ldq) against bf16 K rows, times
  // `scale`, with VDPBF16PS (bf16 pairs multiplied exactly, summed in fp32): half the instructions of
  // converting K. Null where the CPU lacks AVX512-BF16.
  void (*scores_bf16)(const uint16_t* q_bf16, int64_t ldq, const void* const* k_rows, int32_t rows, int32_t cols,
                      int32_t dim, float scale, float* s, int64_t lds, const void* const* ahead);

  // One online-softmax step over s[rows x cols] (row stride lds), c turning a score into a base-2
  // exponent: m' = max(row_max, max_j s) ignoring NaN; s = 2^((s - m') c); alpha = 2^((row_max - m') c);
  // row_sum = row_sum alpha + sum_j s; row_max = m'. A row whose max stays -inf gets s = 0 (NaN for a
  // NaN score) and alpha = 1.
  void (*softmax)(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max, float* row_sum,
                  float* row_alpha);

  // o[r][0..dim) = alpha[r] o[r] + sum_j p[r * ldp + j] v_rows[j][0..dim) for r < rows, j < cols, V
  // rows read in place as for scores.
  void (*accumulate)(const float* p, int64_t ldp, const void* const* v_rows, DType dtype, int32_t rows, int32_t cols,
                     int32_t dim, const float* alpha, float* o, int64_t ldo, const void* const* ahead);

  // accumulate() for bf16 V rows with VDPBF16PS: the weights p are rounded to bf16 (to nearest even,
  // as the flash kernel's bf16 path rounds P), each product of two bf16 values is exact and the sums
  // are fp32. Two keys per instruction and no conversion of V: about half the instructions of
  // accumulate(). Null where the CPU lacks AVX512-BF16.
  void (*accumulate_bf16)(const float* p, int64_t ldp, const void* const* v_rows, int32_t rows, int32_t cols,
                          int32_t dim, const float* alpha, float* o, int64_t ldo, const void* const* ahead);
};

const DecodeCpuKernels& scalar_decode_kernels();
// nullptr when this build or this CPU lacks AVX-512 (F, BW, DQ, VL); scores_bf16 set when it also has
// AVX512-BF16.
const DecodeCpuKernels* avx512_decode_kernels();
// The fastest this CPU runs.
const DecodeCpuKernels& best_decode_kernels();

}  // namespace attnc::decode
