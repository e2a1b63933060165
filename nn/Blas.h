#pragma once
// The dense products of the module layer (projections): OpenBLAS's sgemm on the CPU when the build
// found it (Debian libopenblas-dev, through pkg-config), the CPU backend's own fp32 gemm
// micro-kernel (runtime/cpu/CpuMicroKernels.h) otherwise; cuBLAS on the GPU (nn/Cublas.h).

#include <cstdint>

namespace attnc::nn {

// c[m x n] = a[m x k] b[k x n], or c += a b with `accumulate`: row-major fp32 with leading
// dimensions in elements.
void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
           int64_t ldc, bool accumulate = false);

// "openblas" or "micro-kernels": which sgemm this build runs.
const char* cpu_blas_name();

}  // namespace attnc::nn
