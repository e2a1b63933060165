#include "nn/Blas.h"

#include <limits>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuMicroKernels.h"

#if ATTNC_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace attnc::nn {

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
           int64_t ldc, bool accumulate) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  if (m > kMax || n > kMax || k > kMax || lda > kMax || ldb > kMax || ldc > kMax) {
    throw RuntimeError(fmt::format("sgemm: sizes {} x {} x {} exceed the int range of BLAS", m, n, k));
  }
  if (m == 0 || n == 0) return;
#if ATTNC_HAVE_OPENBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), accumulate ? 1.0f : 0.0f, c,
              static_cast<int>(ldc));
#else
  cpu::best_micro_kernels().gemm(static_cast<int32_t>(m), static_cast<int32_t>(n), static_cast<int32_t>(k), a, lda, b,
                                 ldb, c, ldc, accumulate);
#endif
}

const char* cpu_blas_name() {
#if ATTNC_HAVE_OPENBLAS
  return "openblas";
#else
  return "micro-kernels";
#endif
}

}  // namespace attnc::nn
