#include "nn/Linear.h"

#include <catch2/catch.hpp>

#include <vector>

#include "nn/Blas.h"
#include "runtime/core/RuntimeError.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::nn;

TEST_CASE("a linear layer computes x W + b in flax's (in, out) layout", "[nn][linear]") {
  const Tensor w = test::uniform_tensor(1, DType::F32, {5, 3});
  const Tensor b = test::uniform_tensor(2, DType::F32, {3});
  const Tensor x = test::uniform_tensor(3, DType::F32, {2, 4, 5});
  const Linear layer(w, b);
  CHECK(layer.in_features() == 5);
  CHECK(layer.out_features() == 3);
  const Tensor y = layer.forward(x);
  REQUIRE(y.shape() == std::vector<int64_t>{2, 4, 3});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t s = 0; s < 4; ++s)
      for (int64_t o = 0; o < 3; ++o) {
        double expected = b.get_float({o});
        for (int64_t e = 0; e < 5; ++e) expected += double(x.get_float({i, s, e})) * w.get_float({e, o});
        CHECK(y.get_float({i, s, o}) == Approx(expected).epsilon(1e-6).margin(1e-6));
      }
  SECTION("without a bias, and from a strided view") {
    const Linear plain(w);
    const Tensor xt = test::uniform_tensor(4, DType::F32, {4, 2, 5});  // (S, B, in) memory seen as (B, S, in)
    const Tensor view = Tensor::from_data(xt.data(), DType::F32, {2, 4, 5}, {5, 10, 1});
    const Tensor expected = plain.forward(view.contiguous_copy());
    CHECK(attnc_test::relative_error(plain.forward(view), expected) == 0.0);
  }
  SECTION("it refuses what does not fit") {
    CHECK_THROWS_WITH(Linear(Tensor::zeros(DType::F32, {5})), Catch::Contains("(in, out)"));
    CHECK_THROWS_WITH(Linear(w, Tensor::zeros(DType::F32, {4})), Catch::Contains("the bias must be a float (3)"));
    CHECK_THROWS_WITH(layer.forward(Tensor::zeros(DType::F32, {2, 4})), Catch::Contains("x must be fp32 (..., 5)"));
  }
}

TEST_CASE("this build's CPU sgemm is OpenBLAS", "[nn][linear]") { CHECK(std::string(cpu_blas_name()) == "openblas"); }
