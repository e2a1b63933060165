#pragma once
// cuBLAS, opened at run time with dlopen like the CUDA driver (runtime/cuda/CudaDriver.h), so no
// attnc binary links it and every one starts on a machine without a GPU: the module layer's
// projections on CUDA tensors (nn/Linear.h) run through it. Only the entry points attnc uses are
// resolved, from their C ABI (no CUDA headers at build time).
//
// Where it is looked for, in order: $ATTNC_CUBLAS_LIBRARY (alone, when set), libcublas.so.13, .12,
// .11 and libcublas.so on the loader's path, then lib64/ under $CUDA_HOME, $CUDA_PATH and the CUDA
// toolkit found at configure time (libcublasLt beside it is found through cuBLAS's own RUNPATH).
//
// cuBLAS works in the primary context of the device, the one the driver layer makes current
// (CudaDriver::use_device), so device tensors from runtime/cuda/DeviceTensor.h are its operands.

#include <cstdint>
#include <string>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"

namespace attnc::nn {

// libcublas could not be opened (or lacks an entry point attnc needs).
class CublasUnavailable : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

class Cublas {
 public:
  // The process-wide library, loaded on first use; CublasUnavailable saying what was tried.
  static Cublas& get();
  // Whether get() would succeed (never throws).
  static bool available();

  const std::string& library() const;  // the path that was opened
  int version() const;                 // major * 10000 + minor * 100 + patch (cublasGetProperty)

  struct Api;  // the resolved entry points (Cublas.cpp)
  const Api& api() const { return *api_; }

 private:
  Cublas() = default;
  const Api* api_ = nullptr;
};

// A cuBLAS handle on the current device (cublasCreate), destroyed with the object. The CUDA driver
// must have made a device current (CudaDriver::use_device); RuntimeError with cuBLAS's status
// otherwise (cublasCreate fails without a GPU and its driver).
class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  // Kernels run on `stream` (null: the default stream).
  void set_stream(cuda::CuStream stream);

  // c[m x n] = a[m x k] b[k x n] (+ c with `accumulate`): row-major fp32 device memory, leading
  // dimensions in elements. (cuBLAS is column-major: this computes c^T = b^T a^T there.)
  void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
             int64_t ldc, bool accumulate = false);

 private:
  void* handle_ = nullptr;
};

}  // namespace attnc::nn
