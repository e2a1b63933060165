#pragma once
// Moving blocks of a strided Tensor (fp32, fp16 or bf16) to and from the fp32 scratch the CPU
// kernels compute in: the memory-efficient and linear families' loads and stores.

#include <cstdint>

#include "runtime/core/Tensor.h"

namespace attnc::cpu {

// dst[r * ld + c] = multiplier * t[offset + r * row_stride + c * col_stride] for r < rows, c < cols,
// converted from t's float dtype; with `transpose`, dst[c * ld + r] instead. Offsets and strides
// in elements.
void load_block(const Tensor& t, int64_t offset, int64_t row_stride, int64_t col_stride, int32_t rows, int32_t cols,
                float* dst, int64_t ld, float multiplier = 1.0f, bool transpose = false);

// t[offset + i * stride] = multiplier * src[i] for i < n, rounded to t's float dtype (nearest even).
void store_row(const Tensor& t, int64_t offset, int64_t stride, int64_t n, const float* src, float multiplier = 1.0f);

}  // namespace attnc::cpu
