// The device's dropout decisions (runtime/kernels/dropout.cuh, compiled here as host C++) against
// runtime/core/Dropout.h's: the same bits, so GPU kernels drop what the CPU kernels and the
// reference drop.

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include "runtime/core/Dropout.h"
#include "runtime/kernels/dropout.cuh"

TEST_CASE("the device's Philox draws and dropout decisions are the host's, bit for bit", "[runtime][dropout]") {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const auto c0 = static_cast<uint32_t>(rng()), c1 = static_cast<uint32_t>(rng()), c2 = static_cast<uint32_t>(rng()),
               c3 = static_cast<uint32_t>(rng()), k0 = static_cast<uint32_t>(rng()), k1 = static_cast<uint32_t>(rng());
    REQUIRE(attnc_dev::philox4x32_10_first_word(c0, c1, c2, c3, k0, k1) ==
            attnc::philox4x32_10_first_word(c0, c1, c2, c3, k0, k1));
    const uint64_t seed = rng();
    const uint32_t threshold = attnc::dropout_threshold(static_cast<float>(i % 10) / 10.0f);
    const auto b = static_cast<int32_t>(rng() % 64), h = static_cast<int32_t>(rng() % 128);
    const auto q = static_cast<int32_t>(rng() % 100000), kv = static_cast<int32_t>(rng() % 100000);
    REQUIRE(attnc_dev::dropout_keeps(threshold, seed, b, h, q, kv) == attnc::dropout_keeps(threshold, seed, b, h, q, kv));
  }
}
