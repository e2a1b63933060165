#pragma once
// Attention dropout (attnax's dropout_rate / dropout_rng): each probability p[b, h, q_idx, kv_idx]
// is kept with probability 1 - rate and scaled by 1 / (1 - rate), or set to 0. Which elements are
// dropped comes from a counter-based generator, Philox4x32-10 (Salmon et al., SC'11), keyed by the
// seed and counting at (kv_idx, q_idx, h, b): no mask is stored, the forward and the backward pass
// draw the same decision for each element, and any backend that implements the same few lines of
// integer arithmetic (CPU, CUDA) draws the same decisions too. q_idx is the mods' (q_offset + row).
//
// The LSE a forward pass with dropout returns is the softmax's, before dropout.

#include <cstdint>

namespace attnc {

struct Dropout {
  float rate = 0.0f;  // in [0, 1); 0 disables dropout
  uint64_t seed = 0;

  bool enabled() const { return rate > 0.0f; }
  // 1 / (1 - rate): the factor a kept probability is scaled by.
  float keep_scale() const { return 1.0f / (1.0f - rate); }
};

// The first 32-bit word of Philox4x32-10 at counter (c0, c1, c2, c3) with key (k0, k1).
constexpr uint32_t philox4x32_10_first_word(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                            uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
    const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c0;
}

// The 32-bit threshold below which a draw drops the element: round(rate * 2^32), so the drop
// probability is rate to within 2^-32.
constexpr uint32_t dropout_threshold(float rate) {
  const double scaled = static_cast<double>(rate) * 4294967296.0 + 0.5;
  return scaled >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(scaled);
}

// Whether element (b, h, q_idx, kv_idx) survives dropout with this threshold and seed.
constexpr bool dropout_keeps(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx) {
  const uint32_t draw = philox4x32_10_first_word(static_cast<uint32_t>(kv_idx), static_cast<uint32_t>(q_idx),
                                                 static_cast<uint32_t>(h), static_cast<uint32_t>(b),
                                                 static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return draw >= threshold;
}

// RuntimeError unless 0 <= rate < 1 (and finite); `function` prefixes the message.
void check_dropout(const char* function, const Dropout& dropout);

}  // namespace attnc
