#pragma once
// The inner loops of the CPU kernels (runtime/families/flash/FlashCpu.cpp), behind a table of
// function pointers so one binary carries several instruction sets and picks one at run time, best
// first: AVX-512 with the bf16 dot product (vdpbf16ps), AVX-512, AVX2 with FMA, portable scalar
// C++. Each set is compiled with target attributes, not -m flags, so the library still runs on CPUs
// without it; micro_kernels() hands a set out only when the CPU has it.
//
// All fp32 matrices are row-major, with leading dimensions in elements (any sign, may be 0).
// bf16 operands come in pairs: a uint32 holds two bf16 values, the lower-indexed one in the low
// half, which is exactly a row of bf16 values in memory read two at a time.

#include <cstdint>
#include <optional>
#include <string_view>

namespace attnc::cpu {

enum class CpuIsa { Avx512Bf16, Avx512, Avx2, Scalar };  // best first

struct CpuMicroKernels {
  CpuIsa isa;
  const char* name;  // "avx512-bf16", "avx512", "avx2" or "scalar"

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
  // NaN that exp2(-inf - -inf) would give, unless one of its scores is NaN: then m' is NaN, and so
  // is everything the row computes from then on (docs/semantics.md).
  void (*softmax_tile)(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max, float* row_sum,
                       float* row_alpha);

  // o[r][0..cols) *= alpha[r] for every row whose alpha is not 1.
  void (*scale_rows)(float* o, int64_t ldo, int32_t rows, int32_t cols, const float* alpha);

  // bf16 products, AVX512-BF16 only (null in the other sets): with a[m x kp] and b[kp x n] pairs
  // (row strides lda, ldb in pairs),
  //   c[i][j] = alpha * sum_p (a[i][p].lo * b[p][j].lo + a[i][p].hi * b[p][j].hi)
  // or, with `accumulate`, c[i][j] += the sum (alpha unused). Each product is exact in fp32 and
  // the sums are fp32, as vdpbf16ps computes them.
  void (*gemm_bf16)(int32_t m, int32_t n, int32_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                    float* c, int64_t ldc, bool accumulate, float alpha);

  // dst[r][0..padded) = bf16(src[r][0..cols)) rounded to nearest even, then zeros up to `padded`
  // (row strides lds, ldd in elements). Null where gemm_bf16 is null.
  void (*round_to_bf16)(const float* src, int64_t lds, int32_t rows, int32_t cols, uint16_t* dst, int64_t ldd,
                        int32_t padded);

  // c[m x n] = a^T b (or c += a^T b) for a stored k x m (row stride lda): gemm() on the transpose of
  // a without forming it (the backward pass's dV += P^T dO and dK += dS^T Q). Every set has it.
  void (*gemm_at)(int32_t m, int32_t n, int32_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc, bool accumulate);

  // The softmax's backward step on a tile (row stride ld for p, dp and ds):
  //   ds[r][j] = p[r][j] == 0 ? 0 : p[r][j] * (dp[r][j] - delta[r])
  // exactly 0 where the probability is 0 (masked), whatever dp holds there.
  void (*softmax_backward_tile)(const float* p, const float* dp, int64_t ld, int32_t rows, int32_t cols,
                                const float* delta, float* ds);

  // Attention dropout's decisions for a tile (runtime/core/Dropout.h): bit c of bits[r] is set when
  // element (b, h, q_first + r, kv_first + c) is kept, dropout_keeps(threshold, seed, ...), for
  // r < rows and c < cols <= 64 (higher bits 0). The AVX-512 set draws 16 Philox4x32-10 streams per
  // instruction; the others one at a time.
  void (*dropout_keep_bits)(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_first, int32_t rows,
                            int32_t kv_first, int32_t cols, uint64_t* bits);

  // dst[r][c] = bit c of bits[r] ? src[r][c] * scale : 0 for r < rows, c < cols <= 64 (row stride
  // ld for both; dst may be src).
  void (*dropout_apply)(const float* src, float* dst, int64_t ld, int32_t rows, int32_t cols, const uint64_t* bits,
                        float scale);
};

const char* cpu_isa_name(CpuIsa isa);
// "avx512-bf16", "avx512", "avx2", "scalar" -> the set; nullopt for anything else.
std::optional<CpuIsa> parse_cpu_isa(std::string_view name);

// Whether this CPU (and this build) runs `isa`.
bool cpu_supports(CpuIsa isa);

// The kernels of `isa`, or nullptr when this CPU cannot run them.
const CpuMicroKernels* micro_kernels(CpuIsa isa);

// The kernels the CPU kernels use by default: the best set this CPU runs, or, when the environment
// variable ATTNC_CPU_ISA names a set, the best set at or below that one (so ATTNC_CPU_ISA=avx2
// runs the AVX2 kernels on an AVX-512 machine, for testing the lower paths). Decided once.
const CpuMicroKernels& best_micro_kernels();

// The portable kernels (always available).
const CpuMicroKernels& scalar_micro_kernels();

// The scalar dropout_keep_bits and dropout_apply (the AVX2 set uses them too).
void dropout_keep_bits_scalar(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_first, int32_t rows,
                              int32_t kv_first, int32_t cols, uint64_t* bits);
void dropout_apply_scalar(const float* src, float* dst, int64_t ld, int32_t rows, int32_t cols, const uint64_t* bits,
                          float scale);

// The scalar definition of gemm_bf16, the reference its vectorised versions are tested against.
void gemm_bf16_reference(int32_t m, int32_t n, int32_t kp, const uint32_t* a, int64_t lda, const uint32_t* b,
                         int64_t ldb, float* c, int64_t ldc, bool accumulate, float alpha);

// The tables of the vectorised sets, defined in their own files (nullptr when the build lacks them).
const CpuMicroKernels* avx512_micro_kernels();
const CpuMicroKernels* avx512_bf16_micro_kernels();
const CpuMicroKernels* avx2_micro_kernels();

}  // namespace attnc::cpu
