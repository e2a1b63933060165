// Dropout's generator: Philox4x32-10 against the published known-answer vectors (Random123), the
// kept fraction against its binomial distribution, and the rate checks.

#include "runtime/core/Dropout.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"

using namespace attnc;

TEST_CASE("Philox4x32-10 gives the known-answer vectors' first words", "[dropout]") {
  // Random123's kat_vectors for philox4x32_10 (counter words, key words -> first output word).
  CHECK(philox4x32_10_first_word(0, 0, 0, 0, 0, 0) == 0x6627e8d5u);
  CHECK(philox4x32_10_first_word(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu) ==
        0x408f276du);
  CHECK(philox4x32_10_first_word(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u) ==
        0xd16cfe09u);
}

TEST_CASE("dropout keeps 1 - rate of the elements, within 3 standard deviations", "[dropout]") {
  for (float rate : {0.1f, 0.5f, 0.9f}) {
    const uint32_t threshold = dropout_threshold(rate);
    int64_t kept = 0, n = 0;
    for (int32_t b = 0; b < 2; ++b)
      for (int32_t h = 0; h < 4; ++h)
        for (int32_t q = 0; q < 128; ++q)
          for (int32_t kv = 0; kv < 256; ++kv, ++n) kept += dropout_keeps(threshold, 42, b, h, q, kv);
    const double p = 1.0 - rate, sigma = std::sqrt(n * p * (1 - p));
    CAPTURE(rate, kept, n);
    CHECK(std::fabs(kept - n * p) <= 3 * sigma);
  }
  CHECK(dropout_threshold(0.0f) == 0u);  // rate 0 keeps everything
}

TEST_CASE("dropout decisions depend on the seed and on every coordinate", "[dropout]") {
  const uint32_t threshold = dropout_threshold(0.5f);
  int differ_seed = 0, differ_b = 0, differ_h = 0, differ_q = 0;
  for (int32_t i = 0; i < 1000; ++i) {
    const bool base = dropout_keeps(threshold, 1, 0, 0, i, i / 3);
    differ_seed += base != dropout_keeps(threshold, 2, 0, 0, i, i / 3);
    differ_b += base != dropout_keeps(threshold, 1, 1, 0, i, i / 3);
    differ_h += base != dropout_keeps(threshold, 1, 0, 1, i, i / 3);
    differ_q += base != dropout_keeps(threshold, 1, 0, 0, i + 1000, i / 3);
  }
  // Independent fair coins differ about half the time.
  for (int differ : {differ_seed, differ_b, differ_h, differ_q}) {
    CHECK(differ > 400);
    CHECK(differ < 600);
  }
}

TEST_CASE("dropout rates outside [0, 1) are refused", "[dropout]") {
  CHECK_NOTHROW(check_dropout("f", Dropout{0.0f, 0}));
  CHECK_NOTHROW(check_dropout("f", Dropout{0.99f, 0}));
  CHECK_THROWS_WITH(check_dropout("f", Dropout{1.0f, 0}), "f: the dropout rate must be in [0, 1), got 1");
  CHECK_THROWS_AS(check_dropout("f", Dropout{-0.1f, 0}), RuntimeError);
  CHECK_THROWS_AS(check_dropout("f", Dropout{NAN, 0}), RuntimeError);
}
