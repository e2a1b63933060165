#include "runtime/reference/LinearReference.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;

namespace {

double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }

}  // namespace

TEST_CASE("the linear attention reference computes the formulas on a hand-sized example", "[linear][reference]") {
  // One head, D = 1, Dv = 1: q = (0.5, -1), k = (1, -2), v = (3, 5).
  const Tensor q = Tensor::from_vector(std::vector<float>{0.5f, -1.0f}, {1, 1, 2, 1});
  const Tensor k = Tensor::from_vector(std::vector<float>{1.0f, -2.0f}, {1, 1, 2, 1});
  const Tensor v = Tensor::from_vector(std::vector<float>{3.0f, 5.0f}, {1, 1, 2, 1});
  const double pq0 = 1.5, pq1 = std::exp(-1.0), pk0 = 2.0, pk1 = std::exp(-2.0);
  SECTION("causal: query i sees keys 0..i") {
    const std::vector<float> out = linear_attention_reference(q, k, v).to_float_vector();
    CHECK(out[0] == Approx(pq0 * pk0 * 3 / (pq0 * pk0 + 1e-6)).epsilon(1e-7));
    CHECK(out[1] == Approx((pq1 * pk0 * 3 + pq1 * pk1 * 5) / (pq1 * (pk0 + pk1) + 1e-6)).epsilon(1e-7));
  }
  SECTION("non-causal: phi(Q) (phi(K)^T V) / (phi(Q) sum phi(K) + eps)") {
    LinearAttentionOptions options;
    options.causal = false;
    const std::vector<float> out = linear_attention_reference(q, k, v, options).to_float_vector();
    const double s = pk0 * 3 + pk1 * 5, z = pk0 + pk1;
    CHECK(out[0] == Approx(pq0 * s / (pq0 * z + 1e-6)).epsilon(1e-7));
    CHECK(out[1] == Approx(pq1 * s / (pq1 * z + 1e-6)).epsilon(1e-7));
  }
  SECTION("a masked key adds to neither sum; with every key masked the output is 0") {
    LinearAttentionOptions options;
    options.causal = false;
    options.mask = Tensor::from_vector(std::vector<int32_t>{1, 0}, {2}, DType::Bool);
    CHECK(linear_attention_reference(q, k, v, options).to_float_vector()[1] ==
          Approx(pq1 * pk0 * 3 / (pq1 * pk0 + 1e-6)).epsilon(1e-7));
    options.mask = Tensor::from_vector(std::vector<int32_t>{0, 0}, {2}, DType::U8);
    for (float x : linear_attention_reference(q, k, v, options).to_float_vector()) CHECK(x == 0.0f);
  }
}

TEST_CASE("the linear attention reference reads GQA heads and agrees with the factorised form", "[linear][reference]") {
  const Tensor q = test::uniform_tensor(1, DType::F32, {1, 4, 6, 3}, -2.0f, 2.0f);
  const Tensor k = test::uniform_tensor(2, DType::F32, {1, 2, 5, 3}, -2.0f, 2.0f);
  const Tensor v = test::uniform_tensor(3, DType::F32, {1, 2, 5, 2});
  LinearAttentionOptions options;
  options.causal = false;
  const Tensor out = linear_attention_reference(q, k, v, options);
  for (int64_t h = 0; h < 4; ++h) {
    const int64_t g = h / 2;
    // S = phi(K)^T V (3 x 2) and z = sum phi(K) of KV head g.
    double s[3][2] = {}, z[3] = {};
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t d = 0; d < 3; ++d) {
        z[d] += phi(k.get_float({0, g, j, d}));
        for (int64_t e = 0; e < 2; ++e) s[d][e] += phi(k.get_float({0, g, j, d})) * v.get_float({0, g, j, e});
      }
    for (int64_t i = 0; i < 6; ++i) {
      double den = 1e-6, num[2] = {};
      for (int64_t d = 0; d < 3; ++d) {
        const double pq = phi(q.get_float({0, h, i, d}));
        den += pq * z[d];
        for (int64_t e = 0; e < 2; ++e) num[e] += pq * s[d][e];
      }
      for (int64_t e = 0; e < 2; ++e) {
        CAPTURE(h, i, e);
        CHECK(out.get_float({0, h, i, e}) == Approx(num[e] / den).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("the linear attention reference refuses masks that do not broadcast", "[linear][reference]") {
  const Tensor q = test::uniform_tensor(1, DType::F32, {2, 2, 4, 3});
  LinearAttentionOptions options;
  options.mask = Tensor::zeros(DType::Bool, {3, 1, 1, 4});
  CHECK_THROWS_WITH(linear_attention_reference(q, q, q, options),
                    Catch::Contains("linear_attention_reference: mask bool[3, 1, 1, 4]") &&
                        Catch::Contains("does not broadcast to [2, 2, 4, 4]"));
  options.mask = Tensor::zeros(DType::F32, {4});
  CHECK_THROWS_WITH(linear_attention_reference(q, q, q, options), Catch::Contains("bool, uint8, int32 or int64"));
}
