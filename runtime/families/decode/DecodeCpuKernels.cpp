#include "runtime/families/decode/DecodeCpuKernels.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace attnc::decode {

namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

void convert_scalar(const void* src, DType dtype, int64_t n, float* dst) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
      return;
    }
    default: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bfloat16_to_float(s[i]);
      return;
    }
  }
}

float element(const void* row, DType dtype, int32_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(row)[i];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(row)[i]);
    default: return bfloat16_to_float(static_cast<const uint16_t*>(row)[i]);
  }
}

void scores_scalar(const float* q, int64_t ldq, const void* const* k_rows, DType dtype, int32_t rows, int32_t cols,
                   int32_t dim, float* s, int64_t lds, const void* const* /*ahead: left to the hardware*/) {
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t j = 0; j < cols; ++j) {
      float sum = 0;
      for (int32_t d = 0; d < dim; ++d) sum += q[r * ldq + d] * element(k_rows[j], dtype, d);
      s[r * lds + j] = sum;
    }
  }
}

void softmax_scalar(float* s, int64_t lds, int32_t rows, int32_t cols, float c, float* row_max, float* row_sum,
                    float* row_alpha) {
  for (int32_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    float m = row_max[r];
    for (int32_t j = 0; j < cols; ++j) m = row[j] > m ? row[j] : m;  // NaN compares false: ignored
    float sum = 0;
    if (m == kMinusInf) {
      // Nothing kept yet: weights 0 (NaN stays NaN, so a NaN score poisons the row), no rescale.
      for (int32_t j = 0; j < cols; ++j) {
        row[j] = std::isnan(row[j]) ? row[j] : 0.0f;
        sum += row[j];
      }
      row_alpha[r] = 1.0f;
    } else {
      for (int32_t j = 0; j < cols; ++j) {
        row[j] = std::exp2((row[j] - m) * c);
        sum += row[j];
      }
      row_alpha[r] = std::exp2((row_max[r] - m) * c);  // 0 on the first kept tile
    }
    row_sum[r] = row_sum[r] * row_alpha[r] + sum;
    row_max[r] = m;
  }
}

void accumulate_scalar(const float* p, int64_t ldp, const void* const* v_rows, DType dtype, int32_t rows, int32_t cols,
                       int32_t dim, const float* alpha, float* o, int64_t ldo, const void* const* /*ahead*/) {
  for (int32_t r = 0; r < rows; ++r) {
    float* out = o + r * ldo;
    if (alpha[r] != 1.0f) {
      for (int32_t d = 0; d < dim; ++d) out[d] *= alpha[r];
    }
    for (int32_t j = 0; j < cols; ++j) {
      const float weight = p[r * ldp + j];
      for (int32_t d = 0; d < dim; ++d) out[d] += weight * element(v_rows[j], dtype, d);
    }
  }
}

const DecodeCpuKernels kScalar{"scalar", convert_scalar, scores_scalar, nullptr, softmax_scalar, accumulate_scalar, nullptr};

}  // namespace

const DecodeCpuKernels& scalar_decode_kernels() { return kScalar; }

const DecodeCpuKernels& best_decode_kernels() {
  static const DecodeCpuKernels* best = [] {
    const DecodeCpuKernels* avx512 = avx512_decode_kernels();
    return avx512 ? avx512 : &kScalar;
  }();
  return *best;
}

}  // namespace attnc::decode
