#include "nn/RotaryEmbedding.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::nn;

namespace {

double dot(const Tensor& a, const Tensor& b, int64_t row_a, int64_t row_b) {
  double sum = 0;
  for (int64_t d = 0; d < a.size(3); ++d) sum += double(a.get_float({0, 0, row_a, d})) * b.get_float({0, 0, row_b, d});
  return sum;
}

}  // namespace

TEST_CASE("RoPE rotates the two halves of the head dim by position times frequency", "[nn][rope]") {
  const RotaryEmbedding rope(8, 64, 10000.0);
  const Tensor x = test::uniform_tensor(1, DType::F32, {1, 1, 3, 8});
  const Tensor original = x.contiguous_copy();
  rope.apply(x, 5);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t i = 0; i < 4; ++i) {
      const double angle = double(5 + r) * std::pow(10000.0, -double(i) / 4);
      const double x1 = original.get_float({0, 0, r, i}), x2 = original.get_float({0, 0, r, i + 4});
      CAPTURE(r, i);
      CHECK(x.get_float({0, 0, r, i}) == Approx(x1 * std::cos(angle) - x2 * std::sin(angle)).margin(1e-6));
      CHECK(x.get_float({0, 0, r, i + 4}) == Approx(x1 * std::sin(angle) + x2 * std::cos(angle)).margin(1e-6));
    }
  }
}

TEST_CASE("RoPE makes q . k depend on the distance between positions only", "[nn][rope]") {
  const RotaryEmbedding rope(16, 128);
  const Tensor q = test::uniform_tensor(2, DType::F32, {1, 1, 1, 16});
  const Tensor k = test::uniform_tensor(3, DType::F32, {1, 1, 1, 16});
  const Tensor q1 = q.contiguous_copy(), k1 = k.contiguous_copy(), q2 = q.contiguous_copy(), k2 = k.contiguous_copy();
  rope.apply(q1, 10);
  rope.apply(k1, 3);
  rope.apply(q2, 90);
  rope.apply(k2, 83);
  CHECK(dot(q1, k1, 0, 0) == Approx(dot(q2, k2, 0, 0)).margin(1e-5));
  SECTION("and it refuses odd head dims and positions past its table") {
    CHECK_THROWS_WITH(RotaryEmbedding(7, 10), Catch::Contains("even, positive head dim"));
    CHECK_THROWS_WITH(rope.apply(q, 128), Catch::Contains("past the table of 128 positions"));
  }
}
