// The reference backward pass checked against central finite differences of the reference forward:
// for the loss L = sum(dO * O), each element of q, k, v and of every float tensor parameter of the
// score mod is moved by +-h and (L(+h) - L(-h)) / 2h compared with the reference's gradient.

#include "runtime/reference/ReferenceBackward.h"

#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/RuntimeError.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/GradientCases.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

namespace {

struct Inputs {
  Tensor q, k, v, dout;
};

Inputs random_inputs(const GradientCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  return {uniform_tensor(rng, DType::F32, {c.batch, c.heads, c.q_len, c.head_dim}),
          uniform_tensor(rng, DType::F32, {c.batch, c.kv_heads, c.kv_len, c.head_dim}),
          uniform_tensor(rng, DType::F32, {c.batch, c.kv_heads, c.kv_len, c.value_dim}),
          uniform_tensor(rng, DType::F32, {c.batch, c.heads, c.q_len, c.value_dim})};
}

AttentionOptions options_of(const GradientCase& c) {
  AttentionOptions options;
  options.score_mod = c.score_mod ? &*c.score_mod : nullptr;
  options.mask_mod = c.mask_mod ? &*c.mask_mod : nullptr;
  options.q_offset = c.q_offset;
  options.scale = 0.8f;  // not 1/sqrt(D), so a forgotten scale shows
  return options;
}

double loss(const Inputs& in, const GradientCase& c) {
  Tensor out = Tensor::empty(DType::F32, in.dout.shape());
  standard_attention_dropout(in.q, in.k, in.v, out, options_of(c), c.dropout);
  const std::vector<float> o = out.to_float_vector(), d = in.dout.to_float_vector();
  double sum = 0;
  for (size_t i = 0; i < o.size(); ++i) sum += static_cast<double>(o[i]) * d[i];
  return sum;
}

// Compares `gradient` with central differences of the loss in every element of `t` (fp32, C order).
void check_gradient(const char* role, const Tensor& t, const Tensor& gradient, const Inputs& in,
                    const GradientCase& c) {
  REQUIRE(t.dtype() == DType::F32);
  REQUIRE(t.is_contiguous());
  const std::vector<float> g = gradient.to_float_vector();
  REQUIRE(static_cast<int64_t>(g.size()) == t.numel());
  auto* data = static_cast<float*>(t.data());
  constexpr float h = 2e-3f;
  for (int64_t e = 0; e < t.numel(); ++e) {
    const float saved = data[e];
    data[e] = saved + h;
    const double plus = loss(in, c);
    data[e] = saved - h;
    const double minus = loss(in, c);
    data[e] = saved;
    const double fd = (plus - minus) / (2.0 * static_cast<double>(h));
    INFO(c.name << ": d" << role << "[" << e << "] = " << g[e] << ", finite difference " << fd);
    CHECK(std::fabs(g[e] - fd) <= 2e-3 + 1e-2 * std::fabs(fd));
  }
}

}  // namespace

TEST_CASE("the reference backward pass matches finite differences of the reference forward", "[reference][backward]") {
  // GQA (4 query heads on 2 KV heads), odd lengths, q_len != kv_len.
  for (const GradientCase& c : gradient_cases(2, 4, 2, 5, 7, 4, 3, 0, 11)) {
    SECTION(c.name) {
      const Inputs in = random_inputs(c, 5);
      AttentionGradients grads;
      standard_attention_backward(in.q, in.k, in.v, in.dout, grads, options_of(c), c.dropout);
      check_gradient("q", in.q, grads.dq, in, c);
      check_gradient("k", in.k, grads.dk, in, c);
      check_gradient("v", in.v, grads.dv, in, c);
      if (c.score_mod) {
        for (const auto& [name, gradient] : grads.dparams) {
          const uint32_t p = *c.score_mod->def().find_param(name);
          check_gradient(name.c_str(), std::get<Tensor>(*c.score_mod->argument(p)), gradient, in, c);
        }
      }
    }
  }
}

TEST_CASE("rows that keep no key get zero gradients in the reference", "[reference][backward]") {
  for (const GradientCase& c : gradient_cases(1, 2, 1, 5, 7, 4, 3, 0, 3)) {
    if (c.name != "fully masked rows") continue;
    const Inputs in = random_inputs(c, 9);
    AttentionGradients grads;
    standard_attention_backward(in.q, in.k, in.v, in.dout, grads, options_of(c));
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t d = 0; d < c.head_dim; ++d) {
        CHECK(grads.dq.get_float({0, h, 0, d}) == 0.0f);
        CHECK(grads.dq.get_float({0, h, 3, d}) == 0.0f);
        CHECK(grads.dq.get_float({0, h, 1, d}) != 0.0f);
      }
    }
  }
}

TEST_CASE("the reference forward with dropout equals standard_attention at rate 0", "[reference][backward]") {
  const GradientCase c = gradient_cases(1, 2, 1, 6, 6, 4, 4, 0, 1)[1];  // causal
  const Inputs in = random_inputs(c, 2);
  Tensor with = Tensor::empty(DType::F32, in.dout.shape());
  standard_attention_dropout(in.q, in.k, in.v, with, options_of(c), Dropout{});
  const Tensor plain = standard_attention(in.q, in.k, in.v, options_of(c));
  CHECK(attnc_test::relative_error(with, plain) < 1e-6);
}

TEST_CASE("the reference backward pass refuses bad gradients and dropout rates", "[reference][backward]") {
  const GradientCase c = gradient_cases(1, 2, 1, 4, 4, 4, 4, 0, 1)[0];
  const Inputs in = random_inputs(c, 2);
  AttentionGradients grads;
  grads.dq = Tensor::zeros(DType::F32, {1, 2, 4, 5});
  CHECK_THROWS_WITH(standard_attention_backward(in.q, in.k, in.v, in.dout, grads),
                    Catch::Contains("dq must have shape (1, 2, 4, 4)"));
  AttentionGradients fresh;
  CHECK_THROWS_WITH(standard_attention_backward(in.q, in.k, in.v, in.dout, fresh, {}, Dropout{1.0f, 0}),
                    Catch::Contains("dropout rate must be in [0, 1)"));
}
