#include "nn/RotaryEmbedding.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc::nn {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, int64_t max_positions, double base)
    : head_dim_(head_dim), max_positions_(max_positions), base_(base) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    throw RuntimeError(fmt::format("RoPE needs an even, positive head dim, not {}", head_dim));
  }
  if (max_positions < 1)
    throw RuntimeError(fmt::format("RoPE needs a table of at least one position, not {}", max_positions));
  const int64_t half = head_dim / 2;
  cos_.resize(static_cast<size_t>(max_positions * half));
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(base, -static_cast<double>(i) / static_cast<double>(half));
      cos_[static_cast<size_t>(p * half + i)] = static_cast<float>(std::cos(angle));
      sin_[static_cast<size_t>(p * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
}

void RotaryEmbedding::apply(const Tensor& x, int64_t start) const {
  if (!x.defined() || x.rank() != 4 || x.dtype() != DType::F32 || x.device() != Device::Cpu || x.size(3) != head_dim_) {
    throw RuntimeError(fmt::format("RoPE: x must be an fp32 CPU tensor (B, heads, S, {}), got {}", head_dim_,
                                   x.defined() ? x.describe() : "an undefined tensor"));
  }
  if (start < 0 || start + x.size(2) > max_positions_) {
    throw RuntimeError(fmt::format("RoPE: positions {} to {} are past the table of {} positions (rope_max_positions)",
                                   start, start + x.size(2) - 1, max_positions_));
  }
  const int64_t half = head_dim_ / 2;
  const auto& s = x.strides();
  auto* data = static_cast<float*>(x.data());
  for (int64_t b = 0; b < x.size(0); ++b) {
    for (int64_t h = 0; h < x.size(1); ++h) {
      for (int64_t r = 0; r < x.size(2); ++r) {
        float* row = data + b * s[0] + h * s[1] + r * s[2];
        const float* c = cos_.data() + (start + r) * half;
        const float* n = sin_.data() + (start + r) * half;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = row[i * s[3]], x2 = row[(i + half) * s[3]];
          row[i * s[3]] = x1 * c[i] - x2 * n[i];
          row[(i + half) * s[3]] = x1 * n[i] + x2 * c[i];
        }
      }
    }
  }
}

}  // namespace attnc::nn
