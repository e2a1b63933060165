#pragma once
// Device memory as runtime Tensors: allocating, and copying between the host and the GPU through
// the CUDA driver (runtime/cuda/CudaDriver.h). The tensors own their device memory (freed with the
// last copy of the tensor), so `attnc run --device cuda`, the GPU tests and the GPU benchmark
// need no allocator of their own. Every call needs the driver and a current device
// (CudaDriverUnavailable without one).

#include <cstdint>
#include <vector>

#include "compiler/DType.h"
#include "runtime/core/Tensor.h"

namespace attnc::cuda {

// A contiguous, uninitialised CUDA tensor on the current device.
Tensor empty_device_tensor(DType dtype, std::vector<int64_t> shape);

// A contiguous CUDA copy of a CPU tensor (of any strides).
Tensor to_device(const Tensor& host);

// A contiguous CPU copy of a contiguous CUDA tensor. RuntimeError for a CPU or non-contiguous one.
Tensor to_host(const Tensor& device);

// Fills a contiguous CUDA tensor with copies of one byte (0xFF: NaN in fp16, bf16 and fp32).
void fill_device_bytes(const Tensor& device, uint8_t byte);

}  // namespace attnc::cuda
