#pragma once
// Attention dropout's decisions on the device: runtime/core/Dropout.h's philox4x32_10_first_word and
// dropout_keeps, the same integer arithmetic, so a GPU kernel drops exactly the elements the CPU
// kernels and the fp64 reference drop (tests/runtime/kernels/DropoutDeviceTest.cpp compares them bit
// for bit). That header is host C++; NVRTC compiles only the embedded .cuh files, hence this copy.

#include "device_primitives.cuh"

namespace attnc_dev {

// The first 32-bit word of Philox4x32-10 at counter (c0, c1, c2, c3) with key (k0, k1).
ATTNC_HOST_DEVICE inline uint32_t philox4x32_10_first_word(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                                           uint32_t k0, uint32_t k1) {
  const uint32_t mul0 = 0xD2511F53u, mul1 = 0xCD9E8D57u;
  ATTNC_UNROLL
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(mul0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(mul1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c0;
}

// Whether element (b, h, q_idx, kv_idx) survives dropout: its draw at counter (kv_idx, q_idx, h, b)
// with the seed as key is at least `threshold` (round(rate 2^32), Dropout.h's dropout_threshold).
ATTNC_HOST_DEVICE inline bool dropout_keeps(uint32_t threshold, uint64_t seed, int32_t b, int32_t h, int32_t q_idx,
                                            int32_t kv_idx) {
  const uint32_t draw = philox4x32_10_first_word(static_cast<uint32_t>(kv_idx), static_cast<uint32_t>(q_idx),
                                                 static_cast<uint32_t>(h), static_cast<uint32_t>(b),
                                                 static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return draw >= threshold;
}

}  // namespace attnc_dev
