// The CPU backward kernel against the fp64 reference backward (runtime/reference/ReferenceBackward.h)
// for every case of tests/support/GradientCases.h, at sizes that cut queries and keys into several
// tiles with ragged edges, with GQA, q_len != kv_len and fp32 / fp16 / bf16 inputs; plus tile
// skipping, determinism and dropout's agreement with the forward pass.

#include "runtime/families/flash_backward/FlashBackwardCpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/flash/FlashCpu.h"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/GradientCases.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

namespace {

// fp32 products and sums against fp64: relative (Frobenius) error of each gradient.
constexpr double kTolerance = 2e-4;

struct Inputs {
  Tensor q, k, v, dout;
};

Inputs random_inputs(const GradientCase& c, uint32_t seed, DType dtype) {
  std::mt19937 rng(seed);
  return {uniform_tensor(rng, dtype, {c.batch, c.heads, c.q_len, c.head_dim}),
          uniform_tensor(rng, dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim}),
          uniform_tensor(rng, dtype, {c.batch, c.kv_heads, c.kv_len, c.value_dim}),
          uniform_tensor(rng, DType::F32, {c.batch, c.heads, c.q_len, c.value_dim})};
}

AttentionOptions options_of(const GradientCase& c) {
  AttentionOptions options;
  options.score_mod = c.score_mod ? &*c.score_mod : nullptr;
  options.mask_mod = c.mask_mod ? &*c.mask_mod : nullptr;
  options.q_offset = c.q_offset;
  return options;
}

// The forward pass a training step would have run: out (fp32) and the LSE, from the flash kernel, or
// from the reference with dropout or when `exact` (the flash kernel's bf16 products on fp16 / bf16
// inputs would otherwise dominate the comparison).
void forward(const Inputs& in, const GradientCase& c, Tensor& out, Tensor& lse, bool exact = false) {
  out = Tensor::empty(DType::F32, in.dout.shape());
  lse = Tensor::empty(DType::F32, {c.batch, c.heads, c.q_len});
  if (c.dropout.enabled() || exact) {
    standard_attention_dropout(in.q, in.k, in.v, out, options_of(c), c.dropout, &lse);
  } else {
    flash_attention(in.q, in.k, in.v, out, options_of(c), &lse);
  }
}

// ||got - want|| / max(||want||, floor).
double error_with_floor(const Tensor& got, const Tensor& want, double floor) {
  const std::vector<float> a = got.to_float_vector(), b = want.to_float_vector();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::isfinite(diff) ? std::sqrt(diff) / std::max(std::sqrt(norm), floor) : INFINITY;
}

bool all_finite(const Tensor& t) {
  for (float x : t.to_float_vector()) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

// Runs the kernel and the reference on one case; false when the reference is not finite (a random
// mod with an infinite derivative somewhere), which the caller counts.
bool compare_with_reference(const GradientCase& c, DType dtype, const FlashBackwardOptions& flash = {}) {
  const Inputs in = random_inputs(c, 17, dtype);
  AttentionGradients want;
  standard_attention_backward(in.q, in.k, in.v, in.dout, want, options_of(c), c.dropout);
  if (!all_finite(want.dq) || !all_finite(want.dk) || !all_finite(want.dv)) return false;
  Tensor out, lse;
  forward(in, c, out, lse, dtype != DType::F32);
  AttentionGradients got;
  flash_attention_backward(in.q, in.k, in.v, out, lse, in.dout, got, options_of(c), c.dropout, flash);
  INFO(c.name << " (" << dtype_name(dtype) << ")");
  CHECK(attnc_test::relative_error(got.dq, want.dq) < kTolerance);
  CHECK(attnc_test::relative_error(got.dk, want.dk) < kTolerance);
  CHECK(attnc_test::relative_error(got.dv, want.dv) < kTolerance);
  REQUIRE(got.dparams.size() == want.dparams.size());
  for (const auto& [name, gradient] : want.dparams) {
    INFO("parameter " << name);
    REQUIRE(got.dparams.count(name) == 1);
    // A gradient that cancels to about 0 (a bias added to a whole row does not change the softmax)
    // is compared with an absolute floor: fp32 sums of terms that cancel keep ~1e-7 of their size.
    CHECK(error_with_floor(got.dparams.at(name), gradient, 1e-2) < kTolerance);
  }
  return true;
}

}  // namespace

TEST_CASE("the CPU backward kernel matches the reference for every mod case", "[flash_backward]") {
  struct Shape {
    int64_t batch, heads, kv_heads, q_len, kv_len, head_dim, value_dim;
  };
  // Several tiles with ragged edges; GQA 4:2 and MQA 3:1; q_len below, equal to and above kv_len.
  const Shape shapes[] = {{2, 4, 2, 67, 130, 16, 8}, {1, 3, 1, 129, 129, 8, 12}, {1, 2, 2, 150, 70, 12, 4}};
  int compared = 0, skipped = 0;
  for (const Shape& s : shapes) {
    for (const GradientCase& c :
         gradient_cases(s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim, s.value_dim, 6, 21)) {
      CAPTURE(c.name, s.q_len, s.kv_len, s.heads, s.kv_heads);
      (compare_with_reference(c, DType::F32) ? compared : skipped) += 1;
    }
  }
  CAPTURE(compared, skipped);
  CHECK(skipped <= 3);
}

TEST_CASE("the CPU backward kernel takes fp16 and bf16 inputs", "[flash_backward]") {
  for (DType dtype : {DType::F16, DType::BF16}) {
    for (const GradientCase& c : gradient_cases(1, 2, 1, 70, 90, 16, 16, 0, 4)) {
      if (c.name != "alibi" && c.name != "causal" && c.name != "relative bias table") continue;
      CHECK(compare_with_reference(c, dtype));
    }
  }
}

TEST_CASE("the CPU backward kernel runs mods through the interpreter as well as the JIT", "[flash_backward]") {
  FlashBackwardOptions flash;
  flash.backend = CpuBackend::Interpreter;
  for (const GradientCase& c : gradient_cases(1, 2, 1, 70, 70, 8, 8, 1, 8)) {
    if (c.name == "softcap after alibi, causal and window" || c.name == "relative bias table" ||
        c.name == "random mods #0") {
      CHECK(compare_with_reference(c, DType::F32, flash));
    }
  }
}

TEST_CASE("fully masked rows get zero gradients from the CPU backward kernel", "[flash_backward]") {
  for (const GradientCase& c : gradient_cases(1, 2, 1, 70, 70, 8, 8, 0, 3)) {
    if (c.name != "fully masked rows") continue;
    const Inputs in = random_inputs(c, 9, DType::F32);
    Tensor out, lse;
    forward(in, c, out, lse);
    AttentionGradients grads;
    flash_attention_backward(in.q, in.k, in.v, out, lse, in.dout, grads, options_of(c));
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t d = 0; d < c.head_dim; ++d) {
        CHECK(grads.dq.get_float({0, h, 0, d}) == 0.0f);
        CHECK(grads.dq.get_float({0, h, 3, d}) == 0.0f);
      }
    }
  }
}

TEST_CASE("the CPU backward kernel skips EMPTY tiles and masks only PARTIAL ones", "[flash_backward]") {
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  const Tensor q = uniform_tensor(1, DType::F32, {1, 2, 256, 16}), k = uniform_tensor(2, DType::F32, {1, 1, 256, 16});
  const Tensor v = uniform_tensor(3, DType::F32, {1, 1, 256, 16}),
               dout = uniform_tensor(4, DType::F32, {1, 2, 256, 16});
  Tensor lse;
  Tensor out = Tensor::empty(DType::F32, {1, 2, 256, 16});
  flash_attention(q, k, v, out, options, &lse);
  FlashBackwardStats stats;
  FlashBackwardOptions flash;
  flash.stats = &stats;
  AttentionGradients grads;
  flash_attention_backward(q, k, v, out, lse, dout, grads, options, {}, flash);
  // 4 x 4 tiles per head: 6 above the diagonal EMPTY, 4 on it PARTIAL, 6 below FULL.
  CHECK(stats.tiles_skipped == 2 * 6);
  CHECK(stats.tiles_partial == 2 * 4);
  CHECK(stats.tiles_full == 2 * 6);
  CHECK(stats.tiles_computed == stats.tiles_full + stats.tiles_partial);
}

TEST_CASE("dK and dV are the same bit for bit whatever the number of threads", "[flash_backward]") {
  const GradientCase c = gradient_cases(2, 4, 2, 200, 200, 16, 16, 0, 5)[1];  // causal
  const Inputs in = random_inputs(c, 3, DType::F32);
  Tensor out, lse;
  forward(in, c, out, lse);
  AttentionGradients one, many;
  FlashBackwardOptions serial;
  serial.num_threads = 1;
  flash_attention_backward(in.q, in.k, in.v, out, lse, in.dout, one, options_of(c), {}, serial);
  flash_attention_backward(in.q, in.k, in.v, out, lse, in.dout, many, options_of(c));
  CHECK(one.dk.to_float_vector() == many.dk.to_float_vector());
  CHECK(one.dv.to_float_vector() == many.dv.to_float_vector());
  CHECK(attnc_test::relative_error(one.dq, many.dq) < 1e-6);
}

TEST_CASE("dropout: the backward kernel drops exactly what the forward dropped", "[flash_backward][dropout]") {
  // With V the identity (Dv = kv_len), the forward's output is the dropped, rescaled P itself; with
  // dO the identity (Dv >= q_len), dV = (P * M * k)^T dO is its transpose. They must agree element
  // by element, zeros included.
  const int64_t S = 40, Skv = 48;
  const Tensor q = uniform_tensor(1, DType::F32, {1, 2, S, 8}, -2.0f, 2.0f);
  const Tensor k = uniform_tensor(2, DType::F32, {1, 2, Skv, 8}, -2.0f, 2.0f);
  Tensor v = Tensor::zeros(DType::F32, {1, 2, Skv, Skv});
  Tensor dout = Tensor::zeros(DType::F32, {1, 2, S, Skv});
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t j = 0; j < Skv; ++j) v.set_float({0, h, j, j}, 1.0f);
    for (int64_t i = 0; i < S; ++i) dout.set_float({0, h, i, i}, 1.0f);
  }
  const Dropout dropout{0.4f, 77};
  Tensor out = Tensor::empty(DType::F32, {1, 2, S, Skv});
  Tensor lse;
  standard_attention_dropout(q, k, v, out, {}, dropout, &lse);
  AttentionGradients grads;
  flash_attention_backward(q, k, v, out, lse, dout, grads, {}, dropout);
  int dropped = 0;
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < S; ++i) {
      for (int64_t j = 0; j < Skv; ++j) {
        const float forward_p = out.get_float({0, h, i, j}), backward_p = grads.dv.get_float({0, h, j, i});
        dropped += forward_p == 0.0f;
        CHECK((forward_p == 0.0f) == (backward_p == 0.0f));
        CHECK(backward_p == Approx(forward_p).epsilon(1e-5).margin(1e-7));
      }
    }
  }
  // About 40% of 3840 elements.
  CHECK(dropped > 1300);
  CHECK(dropped < 1800);
}

TEST_CASE("dropout: the same seed gives the same gradients twice, another seed others", "[flash_backward][dropout]") {
  const GradientCase c = gradient_cases(1, 2, 1, 70, 70, 8, 8, 0, 5)[1];  // causal
  const Inputs in = random_inputs(c, 3, DType::F32);
  Tensor out = Tensor::empty(DType::F32, in.dout.shape()), lse;
  const auto run = [&](uint64_t seed) {
    standard_attention_dropout(in.q, in.k, in.v, out, options_of(c), Dropout{0.2f, seed}, &lse);
    AttentionGradients grads;
    flash_attention_backward(in.q, in.k, in.v, out, lse, in.dout, grads, options_of(c), Dropout{0.2f, seed});
    return grads.dv.to_float_vector();
  };
  const std::vector<float> first = run(5), second = run(5), other = run(6);
  CHECK(first == second);
  CHECK(first != other);
}

TEST_CASE("the CPU backward kernel refuses what the forward refuses, and a missing lse", "[flash_backward]") {
  const Tensor q = uniform_tensor(1, DType::F32, {1, 2, 8, 4}), k = uniform_tensor(2, DType::F32, {1, 2, 8, 4});
  const Tensor v = uniform_tensor(3, DType::F32, {1, 2, 8, 4}), out = Tensor::zeros(DType::F32, {1, 2, 8, 4});
  AttentionGradients grads;
  CHECK_THROWS_WITH(flash_attention_backward(q, k, v, out, Tensor(), out, grads),
                    Catch::Contains("flash_attention_backward: lse must be given"));
  const Tensor lse = Tensor::zeros(DType::F32, {1, 2, 8});
  CHECK_THROWS_WITH(flash_attention_backward(q, k, v, out, lse, Tensor::zeros(DType::F32, {1, 2, 8, 3}), grads),
                    Catch::Contains("dout must have the shape of out"));
}
