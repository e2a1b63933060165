#pragma once
// Rotary position embeddings (Su et al., RoFormer) in attnax's split-half form: the head dim is cut
// into halves (x1, x2) and, at position p, rotated pair by pair,
//   (x1 cos(p w_i) - x2 sin(p w_i),  x1 sin(p w_i) + x2 cos(p w_i)),   w_i = base^(-i / (D / 2)),
// i in [0, D / 2), with a precomputed table of `max_positions` positions (computed in fp64, stored
// fp32), as attnax's rope_cos_sin_table.

#include <cstdint>
#include <vector>

#include "runtime/core/Tensor.h"

namespace attnc::nn {

class RotaryEmbedding {
 public:
  // RuntimeError for an odd or non-positive head_dim, or max_positions < 1.
  RotaryEmbedding(int64_t head_dim, int64_t max_positions, double base = 10000.0);

  int64_t head_dim() const { return head_dim_; }
  int64_t max_positions() const { return max_positions_; }
  double base() const { return base_; }

  // Rotates x (B, heads, S, D), fp32 on the CPU with any strides, in place: row s is at position
  // start + s. RuntimeError for another shape or dtype, or a position past the table.
  void apply(const Tensor& x, int64_t start) const;

 private:
  int64_t head_dim_, max_positions_;
  double base_;
  std::vector<float> cos_, sin_;  // [position][i], max_positions x D / 2
};

}  // namespace attnc::nn
