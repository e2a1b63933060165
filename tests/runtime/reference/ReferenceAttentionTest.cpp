#include "runtime/reference/ReferenceAttention.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>

#include "compiler/Frontend.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

namespace {

using ScoreFn = std::function<double(double score, int b, int h, int q, int kv)>;
using MaskFn = std::function<bool(int b, int h, int q, int kv)>;

struct Expected {
  std::vector<double> out;  // (B, H, S, Dv) in C order
  std::vector<double> lse;  // (B, H, S)
};

// Attention written as plainly as possible: every score in double, the mods as C++ lambdas, and a
// softmax without max subtraction over the explicitly kept keys.
Expected naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const ScoreFn& score_fn,
                         const MaskFn& mask_fn) {
  int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3);
  int64_t Hkv = k.size(1), Skv = k.size(2), Dv = v.size(3);
  Expected e;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t kvh = h * Hkv / H;  // the same grouping as h / (H / Hkv), computed differently
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> weights(Skv, 0.0);
        double total = 0;
        for (int64_t j = 0; j < Skv; ++j) {
          if (mask_fn && !mask_fn(b, h, i, j)) continue;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += double(q.get_float({b, h, i, d})) * k.get_float({b, kvh, j, d});
          s *= scale;
          if (score_fn) s = score_fn(s, b, h, i, j);
          weights[j] = std::exp(s);
          total += weights[j];
        }
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < Skv; ++j) {
            if (weights[j] != 0) acc += weights[j] / total * v.get_float({b, kvh, j, d});
          }
          e.out.push_back(total > 0 ? acc : 0.0);
        }
        e.lse.push_back(total > 0 ? std::log(total) : -INFINITY);
      }
    }
  return e;
}

void check_close(const Tensor& out, const Tensor* lse, const Expected& e, double tolerance) {
  std::vector<float> got = out.to_float_vector();
  REQUIRE(got.size() == e.out.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    REQUIRE_FALSE(std::isnan(got[i]));
    CHECK(got[i] == Approx(e.out[i]).margin(tolerance));
  }
  if (!lse) return;
  std::vector<float> got_lse = lse->to_float_vector();
  REQUIRE(got_lse.size() == e.lse.size());
  for (size_t i = 0; i < got_lse.size(); ++i) {
    CAPTURE(i);
    if (std::isinf(e.lse[i])) {
      CHECK(got_lse[i] == -INFINITY);
    } else {
      CHECK(got_lse[i] == Approx(e.lse[i]).margin(tolerance));
    }
  }
}

Mod user_mod(const std::string& text, const std::string& name) {
  return Mod::from_module(ir::load_module_text("user.attn", text), name);
}

}  // namespace

TEST_CASE("reference attention matches a naive loop with grouped heads", "[runtime][reference]") {
  auto [B, H, Hkv, S, Skv, D, Dv] = GENERATE(table<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>({
      {2, 4, 2, 5, 7, 8, 6},   // GQA, q_len != kv_len, D != Dv
      {1, 4, 1, 3, 3, 4, 4},   // MQA
      {1, 3, 3, 9, 1, 5, 2},   // one key
      {2, 2, 2, 1, 11, 3, 7},  // one query, odd lengths
  }));
  CAPTURE(B, H, Hkv, S, Skv, D, Dv);
  Tensor q = uniform_tensor(1, DType::F32, {B, H, S, D});
  Tensor k = uniform_tensor(2, DType::F32, {B, Hkv, Skv, D});
  Tensor v = uniform_tensor(3, DType::F32, {B, Hkv, Skv, Dv});
  double scale = 1.0 / std::sqrt(static_cast<double>(D));

  SECTION("no mods") {
    Tensor lse;
    Tensor out = standard_attention(q, k, v, {}, &lse);
    CHECK(out.dtype() == DType::F32);
    CHECK(lse.shape() == std::vector<int64_t>{B, H, S});
    check_close(out, &lse, naive_attention(q, k, v, scale, nullptr, nullptr), 1e-5);
  }
  SECTION("causal mask and ALiBi") {
    Mod causal = causal_mod();
    Mod alibi = alibi_mod(static_cast<int>(H));
    std::vector<float> slopes = alibi_slopes(static_cast<int>(H));
    AttentionOptions options;
    options.mask_mod = &causal;
    options.score_mod = &alibi;
    Tensor lse = Tensor::zeros(DType::F32, {B, H, S});
    Tensor out = Tensor::zeros(DType::F32, {B, H, S, Dv});
    standard_attention(q, k, v, out, options, &lse);
    check_close(out, &lse,
                naive_attention(
                    q, k, v, scale, [&](double s, int, int h, int i, int j) { return s - slopes[h] * std::abs(i - j); },
                    [](int, int, int i, int j) { return j <= i; }),
                1e-5);
  }
  SECTION("a custom scale and softcapping") {
    Mod cap = softcap_mod(0.3f);
    AttentionOptions options;
    options.score_mod = &cap;
    options.scale = 2.5f;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    check_close(out, &lse,
                naive_attention(
                    q, k, v, 2.5, [](double s, int, int, int, int) { return 0.3 * std::tanh(s / 0.3); }, nullptr),
                1e-5);
  }
}

TEST_CASE("rows with no kept key give output 0 and LSE -inf, never NaN", "[runtime][reference]") {
  Tensor q = uniform_tensor(4, DType::F32, {1, 2, 6, 4});
  Tensor k = uniform_tensor(5, DType::F32, {1, 2, 3, 4});
  Tensor v = uniform_tensor(6, DType::F32, {1, 2, 3, 4});
  // Bottom-right causal with q_len 6 > kv_len 3: rows 0..2 keep nothing.
  Mod mask = causal_bottom_right_mod();
  Expected expected = naive_attention(q, k, v, 0.5, nullptr, [](int, int, int i, int j) { return j <= i - 3; });
  SECTION("masked by a mask mod") {
    AttentionOptions options;
    options.mask_mod = &mask;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 3; ++i) {
        CAPTURE(h, i);
        CHECK(lse.get_float({0, h, i}) == -INFINITY);
        for (int64_t d = 0; d < 4; ++d) CHECK(out.get_float({0, h, i, d}) == 0.0f);
      }
    check_close(out, &lse, expected, 1e-5);
  }
  SECTION("a score mod that returns -inf for the whole row") {
    Mod score = mask_mod_to_score_mod(mask);
    AttentionOptions options;
    options.score_mod = &score;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    check_close(out, &lse, expected, 1e-5);
  }
  SECTION("an empty key sequence") {
    Tensor k0 = Tensor::zeros(DType::F32, {1, 2, 0, 4});
    Tensor v0 = Tensor::zeros(DType::F32, {1, 2, 0, 3});
    Tensor lse;
    Tensor out = standard_attention(q, k0, v0, {}, &lse);
    CHECK(out.shape() == std::vector<int64_t>{1, 2, 6, 3});
    for (float x : out.to_float_vector()) CHECK(x == 0.0f);
    for (float x : lse.to_float_vector()) CHECK(x == -INFINITY);
  }
}

TEST_CASE("a kept NaN score makes its row NaN, even when every kept score is NaN", "[runtime][reference]") {
  Tensor q = uniform_tensor(7, DType::F32, {1, 2, 6, 4});
  Tensor k = uniform_tensor(8, DType::F32, {1, 2, 5, 4});
  Tensor v = uniform_tensor(9, DType::F32, {1, 2, 5, 4});
  auto row_is = [](const Tensor& out, const Tensor& lse, int64_t h, int64_t i, const char* what) {
    CAPTURE(h, i, what);
    const float l = lse.get_float({0, h, i});
    if (std::string(what) == "nan") CHECK(std::isnan(l));
    if (std::string(what) == "finite") CHECK(std::isfinite(l));
    if (std::string(what) == "empty") CHECK(l == -INFINITY);
    for (int64_t d = 0; d < 4; ++d) {
      const float x = out.get_float({0, h, i, d});
      if (std::string(what) == "nan") CHECK(std::isnan(x));
      if (std::string(what) == "finite") CHECK(std::isfinite(x));
      if (std::string(what) == "empty") CHECK(x == 0.0f);
    }
  };
  SECTION("NaN in one query row: that row only") {
    for (int64_t d = 0; d < 4; ++d) q.set_float({0, 1, 2, d}, NAN);
    Tensor lse;
    Tensor out = standard_attention(q, k, v, {}, &lse);
    row_is(out, lse, 1, 2, "nan");
    row_is(out, lse, 1, 1, "finite");
    row_is(out, lse, 0, 2, "finite");
  }
  SECTION("a NaN scale: every row") {
    AttentionOptions options;
    options.scale = NAN;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    for (int64_t i = 0; i < 6; ++i) row_is(out, lse, 0, i, "nan");
  }
  SECTION("a score mod giving NaN (softcap with cap nan): every row") {
    Mod softcap = softcap_mod(1.0f);
    softcap.bind("cap", NAN);
    AttentionOptions options;
    options.score_mod = &softcap;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    for (int64_t i = 0; i < 6; ++i) row_is(out, lse, 1, i, "nan");
  }
  SECTION("one NaN key under a causal mask: the rows that keep it") {
    for (int64_t d = 0; d < 4; ++d) k.set_float({0, 0, 3, d}, NAN);
    Mod causal = causal_mod();
    AttentionOptions options;
    options.mask_mod = &causal;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    for (int64_t i = 0; i < 3; ++i) row_is(out, lse, 0, i, "finite");
    for (int64_t i = 3; i < 6; ++i) row_is(out, lse, 0, i, "nan");
    row_is(out, lse, 1, 5, "finite");
  }
  SECTION("a NaN row whose keys are all masked stays empty") {
    for (int64_t d = 0; d < 4; ++d) q.set_float({0, 0, 0, d}, NAN);
    Mod bottom_right = causal_bottom_right_mod();  // q_len 6 > kv_len 5: row 0 keeps nothing
    AttentionOptions options;
    options.mask_mod = &bottom_right;
    Tensor lse;
    Tensor out = standard_attention(q, k, v, options, &lse);
    row_is(out, lse, 0, 0, "empty");
    row_is(out, lse, 0, 1, "finite");
  }
}

TEST_CASE("q_offset places the query rows in a longer sequence, as the mods see them", "[runtime][reference]") {
  // The last 3 rows of a 10-row causal call are the same rows computed alone with q_offset 7.
  const Tensor q = uniform_tensor(11, DType::F32, {1, 2, 10, 8});
  const Tensor k = uniform_tensor(12, DType::F32, {1, 2, 10, 8});
  const Tensor v = uniform_tensor(13, DType::F32, {1, 2, 10, 8});
  const Mod window = sliding_window_mod(4, true);
  AttentionOptions options;
  options.mask_mod = &window;
  Tensor full_lse, tail_lse;
  const Tensor full = standard_attention(q, k, v, options, &full_lse);
  const Tensor tail_q = Tensor::from_data(static_cast<float*>(q.data()) + q.offset({0, 0, 7, 0}), DType::F32,
                                          {1, 2, 3, 8}, q.strides());
  options.q_offset = 7;
  const Tensor tail = standard_attention(tail_q, k, v, options, &tail_lse);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < 3; ++i) {
      CAPTURE(h, i);
      CHECK(tail_lse.get_float({0, h, i}) == full_lse.get_float({0, h, 7 + i}));
      for (int64_t d = 0; d < 8; ++d) CHECK(tail.get_float({0, h, i, d}) == full.get_float({0, h, 7 + i, d}));
    }
  }
  options.q_offset = -1;
  CHECK_THROWS_WITH(standard_attention(tail_q, k, v, options), Catch::Contains("q_offset -1 must be >= 0"));
  options.q_offset = std::numeric_limits<int32_t>::max() - 1;
  CHECK_THROWS_WITH(standard_attention(tail_q, k, v, options), Catch::Contains("within the int range"));
}

TEST_CASE("document masking and prefix LM with per-batch tensors", "[runtime][reference]") {
  std::vector<int32_t> ids{0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3};
  std::vector<int32_t> prefixes{1, 4};
  Mod doc = document_mask_mod(Tensor::from_vector(ids, {2, 6}));
  Mod prefix = prefix_lm_mod(Tensor::from_vector(prefixes));
  Mod both = and_masks({doc, prefix});
  Tensor q = uniform_tensor(7, DType::F32, {2, 2, 6, 4});
  Tensor k = uniform_tensor(8, DType::F32, {2, 2, 6, 4});
  Tensor v = uniform_tensor(9, DType::F32, {2, 2, 6, 4});
  AttentionOptions options;
  options.mask_mod = &both;
  Tensor lse;
  Tensor out = standard_attention(q, k, v, options, &lse);
  check_close(out, &lse,
              naive_attention(q, k, v, 0.5, nullptr,
                              [&](int b, int, int i, int j) {
                                return ids[b * 6 + i] == ids[b * 6 + j] && (j < prefixes[b] || j <= i);
                              }),
              1e-5);
}

TEST_CASE("half-precision inputs and outputs are converted", "[runtime][reference]") {
  DType dtype = GENERATE(DType::F16, DType::BF16);
  CAPTURE(dtype_name(dtype));
  Tensor q = uniform_tensor(10, dtype, {1, 2, 5, 8});
  Tensor k = uniform_tensor(11, dtype, {1, 2, 7, 8});
  Tensor v = uniform_tensor(12, dtype, {1, 2, 7, 8});
  Mod causal = causal_bottom_right_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  // The naive loop reads the same rounded inputs, so fp32 output agrees closely.
  Expected expected =
      naive_attention(q, k, v, 1.0 / std::sqrt(8.0), nullptr, [](int, int, int i, int j) { return j <= i + 2; });
  Tensor lse = Tensor::zeros(dtype, {1, 2, 5});
  Tensor out32 = standard_attention(q, k, v, options);
  check_close(out32, nullptr, expected, 1e-5);
  Tensor out = Tensor::zeros(dtype, {1, 2, 5, 8});
  standard_attention(q, k, v, out, options, &lse);
  check_close(out, &lse, expected, dtype == DType::F16 ? 2e-3 : 2e-2);
}

TEST_CASE("strided views are read and written in place", "[runtime][reference]") {
  // (B, S, H, D) buffers, as PyTorch's usual layout, viewed as (B, H, S, D).
  const int64_t B = 2, S = 5, H = 4, Hkv = 2, D = 3;
  Tensor q_bshd = uniform_tensor(13, DType::F32, {B, S, H, D});
  Tensor k_bshd = uniform_tensor(14, DType::F32, {B, S, Hkv, D});
  Tensor v_bshd = uniform_tensor(15, DType::F32, {B, S, Hkv, D});
  auto as_bhsd = [](const Tensor& t) {
    return Tensor::from_data(t.data(), t.dtype(), {t.size(0), t.size(2), t.size(1), t.size(3)},
                             {t.stride(0), t.stride(2), t.stride(1), t.stride(3)});
  };
  Tensor q = as_bhsd(q_bshd), k = as_bhsd(k_bshd), v = as_bhsd(v_bshd);
  REQUIRE_FALSE(q.is_contiguous());
  // The output goes to a (B, S, H, D) buffer too, and the LSE to a transposed (B, S, H) one.
  Tensor out_bshd = Tensor::zeros(DType::F32, {B, S, H, D});
  Tensor out = as_bhsd(out_bshd);
  Tensor lse_bsh = Tensor::zeros(DType::F32, {B, S, H});
  Tensor lse = Tensor::from_data(lse_bsh.data(), DType::F32, {B, H, S}, {S * H, 1, H});
  Mod window = sliding_window_mod(2);
  AttentionOptions options;
  options.mask_mod = &window;
  standard_attention(q, k, v, out, options, &lse);
  Expected expected =
      naive_attention(q.contiguous_copy(), k.contiguous_copy(), v.contiguous_copy(), 1.0 / std::sqrt(3.0), nullptr,
                      [](int, int, int i, int j) { return j <= i && i - j < 2; });
  check_close(out, &lse, expected, 1e-5);
  CHECK(out_bshd.get_float({1, 3, 2, 1}) == out.get_float({1, 2, 3, 1}));
  CHECK(lse_bsh.get_float({1, 4, 3}) == lse.get_float({1, 3, 4}));
}

TEST_CASE("fp32 accumulation agrees with fp64 accumulation", "[runtime][reference]") {
  Tensor q = uniform_tensor(16, DType::F32, {1, 2, 16, 32});
  Tensor k = uniform_tensor(17, DType::F32, {1, 2, 24, 32});
  Tensor v = uniform_tensor(18, DType::F32, {1, 2, 24, 16});
  AttentionOptions f64, f32;
  f32.accumulation = AttentionOptions::Accumulation::F32;
  Tensor lse64, lse32;
  std::vector<float> out64 = standard_attention(q, k, v, f64, &lse64).to_float_vector();
  std::vector<float> out32 = standard_attention(q, k, v, f32, &lse32).to_float_vector();
  for (size_t i = 0; i < out64.size(); ++i) CHECK(out32[i] == Approx(out64[i]).margin(1e-5));
  std::vector<float> l64 = lse64.to_float_vector(), l32 = lse32.to_float_vector();
  for (size_t i = 0; i < l64.size(); ++i) CHECK(l32[i] == Approx(l64[i]).margin(1e-5));
}

TEST_CASE("out-of-range mod indices clamp, or fail with a located error under check_bounds", "[runtime][reference]") {
  Mod bias = user_mod("score_mod column_bias(t: float[N]) = score + t[kv_idx];", "column_bias");
  std::vector<float> values{0.5f, -1.0f, 2.0f};
  bias.bind("t", Tensor::from_vector(values));
  Tensor q = uniform_tensor(19, DType::F32, {1, 1, 2, 4});
  Tensor k = uniform_tensor(20, DType::F32, {1, 1, 5, 4});
  Tensor v = uniform_tensor(21, DType::F32, {1, 1, 5, 4});
  AttentionOptions options;
  options.score_mod = &bias;
  Tensor lse;
  Tensor out = standard_attention(q, k, v, options, &lse);
  check_close(out, &lse,
              naive_attention(
                  q, k, v, 0.5, [&](double s, int, int, int, int j) { return s + values[std::min(j, 2)]; }, nullptr),
              1e-5);

  options.check_bounds = true;
  CHECK_THROWS_WITH(standard_attention(q, k, v, options),
                    Catch::Contains("mod 'column_bias'") && Catch::Contains("parameter 't'") &&
                        Catch::Contains("index 3") && Catch::Contains("extent 3") &&
                        Catch::Contains("(b=0, h=0, q_idx=0, kv_idx=3)"));

  Mod mask = user_mod("mask_mod row_flag(t: bool[N]) = t[q_idx];", "row_flag");
  mask.bind("t", Tensor::from_vector(std::vector<int32_t>{1}, {}, DType::Bool));
  AttentionOptions mask_options;
  mask_options.mask_mod = &mask;
  mask_options.check_bounds = true;
  CHECK_THROWS_WITH(standard_attention(q, k, v, mask_options),
                    Catch::Contains("mod 'row_flag'") && Catch::Contains("(b=0, h=0, q_idx=1, kv_idx=0)"));
}

TEST_CASE("bad arguments are RuntimeErrors naming the problem", "[runtime][reference]") {
  Tensor q = uniform_tensor(22, DType::F32, {2, 4, 3, 8});
  Tensor k = uniform_tensor(23, DType::F32, {2, 2, 5, 8});
  Tensor v = uniform_tensor(24, DType::F32, {2, 2, 5, 6});
  Tensor out = Tensor::zeros(DType::F32, {2, 4, 3, 6});
  AttentionOptions none;
  REQUIRE_NOTHROW(standard_attention(q, k, v, out, none));

  SECTION("rank") {
    CHECK_THROWS_WITH(standard_attention(uniform_tensor(1, DType::F32, {4, 3, 8}), k, v, none),
                      Catch::Contains("q must have rank 4"));
    CHECK_THROWS_WITH(standard_attention(q, uniform_tensor(1, DType::F32, {2, 2, 5, 8, 1}), v, none),
                      Catch::Contains("k must have rank 4"));
  }
  SECTION("batch, head dim and key mismatches") {
    CHECK_THROWS_WITH(standard_attention(q, uniform_tensor(1, DType::F32, {1, 2, 5, 8}), v, none),
                      Catch::Contains("batch"));
    CHECK_THROWS_WITH(standard_attention(q, uniform_tensor(1, DType::F32, {2, 2, 5, 7}), v, none),
                      Catch::Contains("head dims"));
    CHECK_THROWS_WITH(standard_attention(q, k, uniform_tensor(1, DType::F32, {2, 2, 4, 6}), none),
                      Catch::Contains("k and v"));
  }
  SECTION("heads not divisible") {
    CHECK_THROWS_WITH(standard_attention(q, uniform_tensor(1, DType::F32, {2, 3, 5, 8}),
                                         uniform_tensor(1, DType::F32, {2, 3, 5, 6}), none),
                      Catch::Contains("4 query heads are not a multiple of the 3"));
  }
  SECTION("out and lse shapes") {
    Tensor bad_out = Tensor::zeros(DType::F32, {2, 4, 3, 8});
    CHECK_THROWS_WITH(standard_attention(q, k, v, bad_out, none), Catch::Contains("out must have shape [2, 4, 3, 6]"));
    Tensor bad_lse = Tensor::zeros(DType::F32, {2, 4});
    CHECK_THROWS_WITH(standard_attention(q, k, v, out, none, &bad_lse),
                      Catch::Contains("lse must have shape [2, 4, 3]"));
    Tensor int_out = Tensor::zeros(DType::I32, {2, 4, 3, 6});
    CHECK_THROWS_WITH(standard_attention(q, k, v, int_out, none), Catch::Contains("out must be fp32, fp16 or bf16"));
  }
  SECTION("dtypes and devices") {
    CHECK_THROWS_WITH(standard_attention(Tensor::zeros(DType::I32, {2, 4, 3, 8}), k, v, none),
                      Catch::Contains("q must be fp32, fp16 or bf16, not int32"));
    Tensor gpu = Tensor::from_data(k.data(), DType::F32, k.shape(), {}, Device::Cuda);
    CHECK_THROWS_WITH(standard_attention(q, gpu, v, none), Catch::Contains("k is on cuda"));
    CHECK_THROWS_WITH(standard_attention(q, k, Tensor(), none), Catch::Contains("v is undefined"));
  }
  SECTION("mods of the wrong kind") {
    Mod causal = causal_mod();
    Mod cap = softcap_mod(1.0f);
    AttentionOptions swapped;
    swapped.score_mod = &causal;
    CHECK_THROWS_WITH(standard_attention(q, k, v, swapped),
                      Catch::Contains("mod 'causal' was passed as the score_mod, but it is a mask mod"));
    AttentionOptions swapped2;
    swapped2.mask_mod = &cap;
    CHECK_THROWS_WITH(standard_attention(q, k, v, swapped2), Catch::Contains("it is a score mod"));
  }
  SECTION("unbound parameters") {
    Mod window = user_mod("mask_mod w(window: int) = q_idx - kv_idx < window;", "w");
    AttentionOptions options;
    options.mask_mod = &window;
    CHECK_THROWS_WITH(standard_attention(q, k, v, options),
                      Catch::Contains("mod 'w'") && Catch::Contains("window not bound"));
  }
  SECTION("mod tensors on the device") {
    float memory[8] = {};
    Mod alibi = user_mod("score_mod a(s: float[N]) = score - s[h];", "a");
    alibi.bind("s", Tensor::from_data(memory, DType::F32, {8}, {}, Device::Cuda));
    AttentionOptions options;
    options.score_mod = &alibi;
    CHECK_THROWS_WITH(standard_attention(q, k, v, options), Catch::Contains("parameter 's'") && Catch::Contains("CPU"));
  }
}
