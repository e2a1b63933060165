#include "runtime/cpu/CpuBlocks.h"

#include <bit>

namespace attnc::cpu {

namespace {

// float_to_bfloat16 (compiler/DType.h), bit for bit, written so that the compiler inlines and
// vectorises a loop over it: the out-of-line call per element took 5-9% of a bf16 flash call at
// S=1024 (perf, one thread).
inline uint16_t round_to_bfloat16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t nan = (bits >> 16) | 0x0040u;  // a NaN keeps its sign and stays quiet
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

}  // namespace

void load_block(const Tensor& t, int64_t offset, int64_t row_stride, int64_t col_stride, int32_t rows, int32_t cols,
                float* dst, int64_t ld, float multiplier, bool transpose) {
  const int64_t dst_row = transpose ? 1 : ld, dst_col = transpose ? ld : 1;
  if (t.dtype() == DType::F32) {
    const float* src = static_cast<const float*>(t.data()) + offset;
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t c = 0; c < cols; ++c)
        dst[r * dst_row + c * dst_col] = multiplier * src[r * row_stride + c * col_stride];
    }
    return;
  }
  const auto* src = static_cast<const uint16_t*>(t.data()) + offset;
  const bool half = t.dtype() == DType::F16;
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t c = 0; c < cols; ++c) {
      const uint16_t bits = src[r * row_stride + c * col_stride];
      dst[r * dst_row + c * dst_col] = multiplier * (half ? half_to_float(bits) : bfloat16_to_float(bits));
    }
  }
}

void store_row(const Tensor& t, int64_t offset, int64_t stride, int64_t n, const float* src, float multiplier) {
  switch (t.dtype()) {
    case DType::F32: {
      float* dst = static_cast<float*>(t.data()) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i * stride] = src[i] * multiplier;
      return;
    }
    case DType::F16: {
      uint16_t* dst = static_cast<uint16_t*>(t.data()) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i * stride] = float_to_half(src[i] * multiplier);
      return;
    }
    default: {
      uint16_t* dst = static_cast<uint16_t*>(t.data()) + offset;
      if (stride == 1) {
        for (int64_t i = 0; i < n; ++i) dst[i] = round_to_bfloat16(src[i] * multiplier);
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i * stride] = round_to_bfloat16(src[i] * multiplier);
      }
      return;
    }
  }
}

}  // namespace attnc::cpu
