#include "runtime/core/Mods.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "compiler/Frontend.h"
#include "compiler/TileClassifier.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

struct Sizes {
  int q_len = 8, kv_len = 8, heads = 4;
};

ir::Value evaluate_at(const Mod& mod, int b, int h, int q, int kv, float score = 0.0f, Sizes sizes = {}) {
  ir::Environment env = mod.environment(sizes.q_len, sizes.kv_len, sizes.heads, sizes.heads);
  env.set_point(b, h, q, kv, score);
  return ir::evaluate(mod.def().body, env);
}

bool keeps(const Mod& mod, int b, int h, int q, int kv, Sizes sizes = {}) {
  return evaluate_at(mod, b, h, q, kv, 0.0f, sizes).as_bool();
}

float score_at(const Mod& mod, int b, int h, int q, int kv, float score, Sizes sizes = {}) {
  return evaluate_at(mod, b, h, q, kv, score, sizes).f;
}

Mod user_mod(const std::string& text, const std::string& name) {
  return Mod::from_module(ir::load_module_text("user.attn", text), name);
}

// The ALiBi schedule, written independently of alibi_slopes: geometric with ratio and start
// 2^(-8/n) for a power of two n; otherwise the closest power of two's schedule followed by the odd
// powers of 2^(-4/n') (every other element of the 2n' schedule).
std::vector<double> expected_slopes(int n) {
  int p = 1 << static_cast<int>(std::floor(std::log2(n)));
  std::vector<double> out;
  double ratio = std::pow(2.0, -8.0 / p);
  for (int i = 1; i <= p; ++i) out.push_back(std::pow(ratio, i));
  double ratio2 = std::pow(2.0, -8.0 / (2 * p));
  for (int i = 1; static_cast<int>(out.size()) < n; i += 2) out.push_back(std::pow(ratio2, i));
  return out;
}

}  // namespace

TEST_CASE("causal masks keep kv_idx <= q_idx", "[runtime][mods]") {
  Mod mod = causal_mod();
  CHECK(mod.name() == "causal");
  CHECK(mod.kind() == dsl::ModKind::Mask);
  for (int q = 0; q < 8; ++q)
    for (int kv = 0; kv < 8; ++kv) {
      CAPTURE(q, kv);
      CHECK(keeps(mod, 1, 2, q, kv) == (kv <= q));
    }
}

TEST_CASE("bottom-right causal masks align the last query with the last key", "[runtime][mods]") {
  Mod mod = causal_bottom_right_mod();
  auto [q_len, kv_len] = GENERATE(table<int, int>({{3, 7}, {7, 7}, {5, 2}, {1, 9}}));
  CAPTURE(q_len, kv_len);
  for (int q = 0; q < q_len; ++q)
    for (int kv = 0; kv < kv_len; ++kv) {
      CAPTURE(q, kv);
      CHECK(keeps(mod, 0, 0, q, kv, {q_len, kv_len, 1}) == (kv - (kv_len - q_len) <= q));
    }
  // The last row sees every key.
  CHECK(keeps(mod, 0, 0, 2, 6, {3, 7, 1}));
  CHECK_FALSE(keeps(mod, 0, 0, 1, 6, {3, 7, 1}));
}

TEST_CASE("sliding windows keep the window's keys", "[runtime][mods]") {
  SECTION("attnax: causal window 3, row 5 sees keys 3, 4 and 5") {
    Mod mod = sliding_window_mod(3);
    for (int kv = 0; kv < 8; ++kv) {
      CAPTURE(kv);
      CHECK(keeps(mod, 0, 0, 5, kv) == (kv == 3 || kv == 4 || kv == 5));
    }
  }
  SECTION("attnax: symmetric window 2, row 2 sees 1, 2, 3 but not 4") {
    Mod mod = sliding_window_mod(2, false);
    for (int kv = 0; kv < 8; ++kv) {
      CAPTURE(kv);
      CHECK(keeps(mod, 0, 0, 2, kv) == (kv == 1 || kv == 2 || kv == 3));
    }
    CHECK_FALSE(keeps(mod, 0, 0, 2, 4));
  }
  SECTION("the formulas on a grid") {
    int window = GENERATE(1, 2, 5);
    CAPTURE(window);
    Mod causal = sliding_window_mod(window);
    Mod symmetric = sliding_window_mod(window, false);
    for (int q = 0; q < 8; ++q)
      for (int kv = 0; kv < 8; ++kv) {
        CAPTURE(q, kv);
        CHECK(keeps(causal, 0, 0, q, kv) == (q - window < kv && kv <= q));
        CHECK(keeps(symmetric, 0, 0, q, kv) == (std::abs(q - kv) < window));
      }
  }
  SECTION("a window must be positive") {
    CHECK_THROWS_WITH(sliding_window_mod(0), Catch::Contains("positive"));
    CHECK_THROWS_AS(sliding_window_mod(-3, false), RuntimeError);
  }
}

TEST_CASE("ALiBi slopes follow the paper's schedule", "[runtime][mods]") {
  SECTION("12 heads, literally") {
    std::vector<float> slopes = alibi_slopes(12);
    std::vector<double> exponents{-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5};
    REQUIRE(slopes.size() == 12);
    for (size_t i = 0; i < 12; ++i) {
      CAPTURE(i);
      CHECK(slopes[i] == static_cast<float>(std::exp2(exponents[i])));
    }
  }
  SECTION("head counts against the closed form") {
    int heads = GENERATE(1, 2, 3, 4, 6, 8, 12, 16, 20, 32);
    CAPTURE(heads);
    std::vector<float> slopes = alibi_slopes(heads);
    std::vector<double> expected = expected_slopes(heads);
    REQUIRE(slopes.size() == static_cast<size_t>(heads));
    for (int i = 0; i < heads; ++i) {
      CAPTURE(i);
      CHECK(slopes[i] == Approx(expected[i]).epsilon(1e-6));
    }
  }
  SECTION("spot values") {
    CHECK(alibi_slopes(1) == std::vector<float>{1.0f / 256.0f});
    CHECK(alibi_slopes(2) == std::vector<float>{1.0f / 16.0f, 1.0f / 256.0f});
    CHECK(alibi_slopes(3)[2] == static_cast<float>(std::exp2(-2.0)));
  }
  CHECK_THROWS_AS(alibi_slopes(0), RuntimeError);
  CHECK_THROWS_AS(alibi_mod(-1), RuntimeError);
}

TEST_CASE("the ALiBi mod subtracts the head's slope times the distance", "[runtime][mods]") {
  Mod mod = alibi_mod(4);
  std::vector<float> slopes = alibi_slopes(4);
  for (int h = 0; h < 4; ++h)
    for (int q = 0; q < 6; ++q)
      for (int kv = 0; kv < 6; ++kv) {
        CAPTURE(h, q, kv);
        CHECK(score_at(mod, 0, h, q, kv, 0.75f) ==
              Approx(0.75f - slopes[h] * static_cast<float>(std::abs(q - kv))).epsilon(1e-6));
      }
}

TEST_CASE("prefix LM masks are bidirectional inside the prefix and causal after it", "[runtime][mods]") {
  SECTION("attnax: prefix 3") {
    Mod mod = prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{3}));
    CHECK(keeps(mod, 0, 0, 1, 2));
    CHECK_FALSE(keeps(mod, 0, 0, 3, 4));
    CHECK(keeps(mod, 0, 0, 4, 3));
  }
  SECTION("per-batch prefixes on a grid, stored as int64") {
    Tensor prefixes = Tensor::from_vector(std::vector<int32_t>{0, 2, 5}, {}, DType::I64);
    Mod mod = prefix_lm_mod(prefixes);
    for (int b = 0; b < 3; ++b)
      for (int q = 0; q < 8; ++q)
        for (int kv = 0; kv < 8; ++kv) {
          CAPTURE(b, q, kv);
          CHECK(keeps(mod, b, 0, q, kv) == (kv < std::vector<int>{0, 2, 5}[b] || kv <= q));
        }
  }
  SECTION("bad prefix tensors") {
    CHECK_THROWS_WITH(prefix_lm_mod(Tensor::from_vector(std::vector<float>{1.0f, 2.0f})),
                      Catch::Contains("int32 or int64"));
    CHECK_THROWS_WITH(prefix_lm_mod(Tensor::zeros(DType::I32, {2, 2})), Catch::Contains("rank"));
  }
}

TEST_CASE("document masks keep pairs within one document", "[runtime][mods]") {
  std::vector<int32_t> ids{0, 0, 1, 1, 1, 2,  //
                           5, 5, 5, 5, 6, 6};
  Mod mod = document_mask_mod(Tensor::from_vector(ids, {2, 6}));
  for (int b = 0; b < 2; ++b)
    for (int q = 0; q < 6; ++q)
      for (int kv = 0; kv < 6; ++kv) {
        CAPTURE(b, q, kv);
        CHECK(keeps(mod, b, 0, q, kv, {6, 6, 1}) == (ids[b * 6 + q] == ids[b * 6 + kv]));
      }
  CHECK_THROWS_AS(document_mask_mod(Tensor::from_vector(ids)), RuntimeError);
}

TEST_CASE("additive bias adds bias[b, h, q_idx, kv_idx], broadcasting axes of extent 1", "[runtime][mods]") {
  SECTION("full bias") {
    Tensor bias = Tensor::empty(DType::F32, {2, 3, 4, 5});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t q = 0; q < 4; ++q)
          for (int64_t kv = 0; kv < 5; ++kv)
            bias.set_float({b, h, q, kv}, static_cast<float>(1000 * b + 100 * h + 10 * q + kv));
    Mod mod = additive_bias_mod(bias);
    CHECK(score_at(mod, 1, 2, 3, 4, 0.5f) == 1234.5f);
    CHECK(score_at(mod, 0, 1, 0, 2, -1.0f) == 101.0f);
  }
  SECTION("broadcast over batch and head") {
    Tensor bias = Tensor::empty(DType::F16, {1, 1, 3, 3});
    for (int64_t q = 0; q < 3; ++q)
      for (int64_t kv = 0; kv < 3; ++kv) bias.set_float({0, 0, q, kv}, static_cast<float>(q - kv));
    Mod mod = additive_bias_mod(bias);
    CHECK(score_at(mod, 3, 2, 2, 0, 1.0f) == 3.0f);
    CHECK(score_at(mod, 0, 0, 0, 2, 1.0f) == -1.0f);
  }
  SECTION("a rank-2 bias is broadcast from the right") {
    Tensor bias = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
    Mod mod = additive_bias_mod(bias);
    std::vector<int64_t> bound_shape = std::get<Tensor>(*mod.argument(0)).shape();
    CHECK(bound_shape == std::vector<int64_t>{1, 1, 2, 3});
    CHECK(score_at(mod, 1, 3, 1, 2, 0.0f) == 6.0f);
  }
  CHECK_THROWS_AS(additive_bias_mod(Tensor::zeros(DType::I32, {1, 1, 2, 2})), RuntimeError);
  CHECK_THROWS_AS(additive_bias_mod(Tensor::zeros(DType::F32, {1, 1, 1, 2, 2})), RuntimeError);
}

TEST_CASE("softcap squashes scores into (-cap, cap)", "[runtime][mods]") {
  Mod mod = softcap_mod(30.0f);
  for (float s : {-1000.0f, -5.0f, 0.0f, 0.25f, 29.0f, 1e6f}) {
    CAPTURE(s);
    CHECK(score_at(mod, 0, 0, 0, 0, s) == Approx(30.0f * std::tanh(s / 30.0f)).epsilon(1e-6));
  }
  CHECK_THROWS_WITH(softcap_mod(0.0f), Catch::Contains("positive"));
  CHECK_THROWS_AS(softcap_mod(-1.0f), RuntimeError);
  CHECK_THROWS_AS(softcap_mod(NAN), RuntimeError);
}

TEST_CASE("composed score mods apply left to right and keep their arguments", "[runtime][mods]") {
  std::vector<float> slopes = alibi_slopes(4);
  Mod alibi_then_cap = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
  Mod cap_then_alibi = compose_score_mods({softcap_mod(5.0f), alibi_mod(4)});
  CHECK(alibi_then_cap.kind() == dsl::ModKind::Score);
  CHECK(alibi_then_cap.fully_bound());
  for (int h = 0; h < 4; ++h)
    for (int q = 0; q < 5; ++q)
      for (int kv = 0; kv < 5; ++kv) {
        CAPTURE(h, q, kv);
        float s = 7.0f;
        float biased = s - slopes[h] * static_cast<float>(std::abs(q - kv));
        CHECK(score_at(alibi_then_cap, 0, h, q, kv, s) == Approx(5.0f * std::tanh(biased / 5.0f)).epsilon(1e-6));
        CHECK(score_at(cap_then_alibi, 0, h, q, kv, s) ==
              Approx(5.0f * std::tanh(s / 5.0f) - slopes[h] * static_cast<float>(std::abs(q - kv))).epsilon(1e-6));
      }
}

TEST_CASE("clashing parameter names get suffixes and keep their own values", "[runtime][mods]") {
  Mod twice = compose_score_mods({softcap_mod(2.0f), softcap_mod(50.0f)});
  std::vector<std::string> names;
  for (const auto& p : twice.def().params) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"cap", "cap_2"});
  CHECK(score_at(twice, 0, 0, 0, 0, 3.0f) == Approx(50.0f * std::tanh(2.0f * std::tanh(1.5f) / 50.0f)).epsilon(1e-6));

  // Unbound parameters stay bindable under their new names.
  Mod unbound =
      compose_score_mods({user_mod("score_mod scale(cap: float) = score * cap;", "scale"), softcap_mod(4.0f)});
  CHECK(unbound.unbound_params() == std::vector<std::string>{"cap"});
  unbound.bind("cap", 3.0f);
  CHECK(score_at(unbound, 0, 0, 0, 0, 1.0f) == Approx(4.0f * std::tanh(3.0f / 4.0f)).epsilon(1e-6));

  // Extent names are renamed too, so two batch-indexed tensors need not share sizes.
  Mod both = and_masks({prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{2, 2, 2})),
                        document_mask_mod(Tensor::from_vector(std::vector<int32_t>{0, 0, 1, 1}, {1, 4}))});
  CHECK(both.def().params[0].dims[0].name != both.def().params[1].dims[0].name);
  CHECK(both.fully_bound());
}

TEST_CASE("and_masks and or_masks combine masks with their arguments", "[runtime][mods]") {
  Mod windows = and_masks({sliding_window_mod(3), sliding_window_mod(5, false)});
  CHECK(windows.def().params.size() == 2);
  CHECK(windows.def().params[1].name == "window_2");
  Mod causal_doc =
      and_masks({causal_mod(), document_mask_mod(Tensor::from_vector(std::vector<int32_t>{0, 0, 0, 1, 1, 1}, {1, 6}))});
  Mod prefix_or_window = or_masks({prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{2})), sliding_window_mod(2)});
  for (int q = 0; q < 6; ++q)
    for (int kv = 0; kv < 6; ++kv) {
      CAPTURE(q, kv);
      CHECK(keeps(windows, 0, 0, q, kv) == (q - 3 < kv && kv <= q && std::abs(q - kv) < 5));
      CHECK(keeps(causal_doc, 0, 0, q, kv) == (kv <= q && (q < 3) == (kv < 3)));
      CHECK(keeps(prefix_or_window, 0, 0, q, kv) == (kv < 2 || kv <= q || (q - 2 < kv && kv <= q)));
    }
  CHECK(and_masks({causal_mod()}).signature() == causal_mod().signature());
}

TEST_CASE("composition refuses empty lists and mods of the wrong kind", "[runtime][mods]") {
  CHECK_THROWS_WITH(compose_score_mods({}), Catch::Contains("at least one score mod"));
  CHECK_THROWS_WITH(and_masks({}), Catch::Contains("at least one mask mod"));
  CHECK_THROWS_WITH(or_masks({}), Catch::Contains("at least one mask mod"));
  CHECK_THROWS_WITH(compose_score_mods({softcap_mod(1.0f), causal_mod()}),
                    Catch::Contains("argument 1 (mod 'causal') is a mask mod"));
  CHECK_THROWS_WITH(and_masks({causal_mod(), softcap_mod(1.0f)}), Catch::Contains("is a score mod"));
  CHECK_THROWS_AS(or_masks({alibi_mod(2)}), RuntimeError);
  CHECK_THROWS_WITH(mask_mod_to_score_mod(softcap_mod(1.0f)), Catch::Contains("takes a mask mod"));
}

TEST_CASE("a mask mod becomes a score mod that sends masked scores to -inf", "[runtime][mods]") {
  Mod mod = mask_mod_to_score_mod(sliding_window_mod(2));
  CHECK(mod.kind() == dsl::ModKind::Score);
  CHECK(mod.fully_bound());
  CHECK(score_at(mod, 0, 0, 4, 3, 1.25f) == 1.25f);
  CHECK(score_at(mod, 0, 0, 4, 4, -3.0f) == -3.0f);
  CHECK(score_at(mod, 0, 0, 4, 2, 1.25f) == -INFINITY);
  CHECK(score_at(mod, 0, 0, 4, 5, 1.25f) == -INFINITY);
}

TEST_CASE("a mask mod evaluates to a boolean mask tensor", "[runtime][mods]") {
  Tensor mask = mask_mod_to_boolean_mask(causal_bottom_right_mod(), 2, 3, 4, 6);
  CHECK(mask.dtype() == DType::Bool);
  CHECK(mask.shape() == std::vector<int64_t>{2, 3, 4, 6});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t q = 0; q < 4; ++q)
        for (int64_t kv = 0; kv < 6; ++kv) {
          CAPTURE(b, h, q, kv);
          CHECK(mask.get_bool({b, h, q, kv}) == (kv <= q + 2));
        }
  // Heads are visible to the mask: a per-head mask.
  Mod per_head = user_mod("mask_mod even_heads = h % 2 == 0 || kv_idx == num_heads - 1;", "even_heads");
  Tensor heads = mask_mod_to_boolean_mask(per_head, 1, 4, 2, 4);
  CHECK(heads.get_bool({0, 2, 1, 0}));
  CHECK_FALSE(heads.get_bool({0, 1, 1, 0}));
  CHECK(heads.get_bool({0, 1, 1, 3}));

  CHECK_THROWS_WITH(mask_mod_to_boolean_mask(user_mod("mask_mod w(n: int) = kv_idx < n;", "w"), 1, 1, 2, 2),
                    Catch::Contains("not bound"));
  CHECK_THROWS_AS(mask_mod_to_boolean_mask(softcap_mod(1.0f), 1, 1, 2, 2), RuntimeError);
  CHECK_THROWS_AS(mask_mod_to_boolean_mask(causal_mod(), 1, -1, 2, 2), RuntimeError);
  CHECK(mask_mod_to_boolean_mask(causal_mod(), 0, 1, 2, 2).numel() == 0);
}

TEST_CASE("built-in mods have the signatures of the same mods written by hand", "[runtime][mods]") {
  CHECK(sliding_window_mod(3).signature() == sliding_window_mod(7).signature());
  CHECK(sliding_window_mod(3).signature() != sliding_window_mod(3, false).signature());
  CHECK(causal_mod().signature() == user_mod("mask_mod my_causal = q_idx >= kv_idx;", "my_causal").signature());
  CHECK(causal_mod().signature() != causal_bottom_right_mod().signature());
  CHECK(sliding_window_mod(4).signature() ==
        user_mod("mask_mod local(w: int) = q_idx >= kv_idx && q_idx - kv_idx < w;", "local").signature());
  CHECK(alibi_mod(8).signature() ==
        user_mod("score_mod a(s: float[N]) = score - s[h] * abs(q_idx - kv_idx);", "a").signature());
  CHECK(alibi_mod(8).signature() == alibi_mod(12).signature());
  CHECK(and_masks({causal_mod(), sliding_window_mod(5, false)}).signature() ==
        user_mod("mask_mod m(w: int) = kv_idx <= q_idx && abs(q_idx - kv_idx) < w;", "m").signature());
  CHECK(compose_score_mods({alibi_mod(4), softcap_mod(20.0f)}).signature() ==
        user_mod("score_mod c(s: float[N], cap: float) = cap * tanh((score - s[h] * abs(q_idx - kv_idx)) / cap);", "c")
            .signature());
}

TEST_CASE("a mask tensor becomes a mask mod that keeps where the tensor is true, broadcasting", "[runtime][mods]") {
  // (Sq, Skv) = (3, 4), broadcast over batch and heads.
  const std::vector<int32_t> bits{1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
  for (DType dtype : {DType::Bool, DType::U8, DType::I32, DType::I64}) {
    CAPTURE(dtype_name(dtype));
    const Mod mod = mask_tensor_mod(Tensor::from_vector(bits, {3, 4}, dtype));
    CHECK(mod.kind() == dsl::ModKind::Mask);
    CHECK(mod.fully_bound());
    for (int b = 0; b < 2; ++b)
      for (int h = 0; h < 3; ++h)
        for (int q = 0; q < 3; ++q)
          for (int kv = 0; kv < 4; ++kv) {
            CAPTURE(b, h, q, kv);
            CHECK(keeps(mod, b, h, q, kv, {3, 4, 3}) == (bits[size_t(q * 4 + kv)] != 0));
          }
  }
  SECTION("a (B, 1, 1, Skv) padding mask varies with the batch only") {
    const Mod pad =
        mask_tensor_mod(Tensor::from_vector(std::vector<int32_t>{1, 1, 0, 1, 0, 0}, {2, 1, 1, 3}, DType::Bool));
    CHECK(keeps(pad, 0, 2, 1, 1, {3, 3, 3}));
    CHECK_FALSE(keeps(pad, 0, 2, 1, 2, {3, 3, 3}));
    CHECK(keeps(pad, 1, 0, 2, 0, {3, 3, 3}));
    CHECK_FALSE(keeps(pad, 1, 0, 2, 1, {3, 3, 3}));
  }
  SECTION("bool masks of one layout share a signature with int32 masks (they are copied into int32)") {
    CHECK(mask_tensor_mod(Tensor::from_vector(bits, {3, 4}, DType::Bool)).signature() ==
          mask_tensor_mod(Tensor::from_vector(bits, {3, 4}, DType::I32)).signature());
  }
  SECTION("it refuses float masks and ranks above 4") {
    CHECK_THROWS_WITH(mask_tensor_mod(Tensor::from_vector(std::vector<float>{1.0f})),
                      Catch::Contains("bool, uint8, int32 or int64"));
    CHECK_THROWS_WITH(mask_tensor_mod(Tensor::zeros(DType::Bool, {1, 1, 1, 1, 1})), Catch::Contains("rank 1 to 4"));
  }
}

TEST_CASE("a mask tensor's mod classifies tiles from the tensor's box summaries", "[runtime][mods]") {
  // Rows 0-3 keep keys 0-3 only; rows 4-7 keep every key.
  std::vector<int32_t> bits(64, 0);
  for (int q = 0; q < 8; ++q)
    for (int kv = 0; kv < 8; ++kv) bits[size_t(q * 8 + kv)] = q >= 4 || kv < 4;
  const Mod mod = mask_tensor_mod(Tensor::from_vector(bits, {8, 8}, DType::Bool));
  ir::TileClassifier classifier(mod.def());
  ir::Environment env = mod.environment(8, 8, 1, 1);
  CHECK(classifier.classify(env, 0, 3, 4, 7) == ir::TileClass::Empty);
  CHECK(classifier.classify(env, 4, 7, 0, 7) == ir::TileClass::Full);
  CHECK(classifier.classify(env, 0, 3, 0, 3) == ir::TileClass::Full);
  CHECK(classifier.classify(env, 0, 7, 0, 7) == ir::TileClass::Partial);
}

TEST_CASE("with_mask ands a mask tensor into the options' mask mod and owns it", "[runtime][mods]") {
  const Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  const Tensor pad = Tensor::from_vector(std::vector<int32_t>{1, 1, 1, 0}, {4}, DType::Bool);
  MaskedOptions masked = with_mask(options, pad);
  const MaskedOptions copy = masked;  // copies share the mod
  masked = with_mask(AttentionOptions{}, Tensor());
  REQUIRE(copy.options().mask_mod != nullptr);
  for (int q = 0; q < 4; ++q)
    for (int kv = 0; kv < 4; ++kv) {
      CAPTURE(q, kv);
      CHECK(keeps(*copy.options().mask_mod, 0, 0, q, kv, {4, 4, 1}) == (kv <= q && kv != 3));
    }
  CHECK(masked.options().mask_mod == nullptr);  // an undefined mask changes nothing
  const MaskedOptions alone = with_mask(AttentionOptions{}, pad);
  CHECK(keeps(*alone.options().mask_mod, 0, 0, 0, 2, {4, 4, 1}));
  CHECK_FALSE(keeps(*alone.options().mask_mod, 0, 0, 0, 3, {4, 4, 1}));
}

TEST_CASE("a block view of a mod sees whole-sequence key positions and lengths", "[runtime][mods]") {
  SECTION("kv_idx is shifted by the block's offset") {
    const BlockMod block = block_view_mod(causal_mod());
    CHECK(block.seq_q_len.empty());
    CHECK(block.seq_kv_len.empty());
    const Mod at = block.at(10, 32, 32);
    CHECK(at.fully_bound());
    CHECK(keeps(at, 0, 0, 12, 2));  // key 12 <= query 12
    CHECK_FALSE(keeps(at, 0, 0, 11, 2));
  }
  SECTION("q_len and kv_len become the sequence's") {
    const BlockMod block = block_view_mod(causal_bottom_right_mod());
    CHECK(block.seq_q_len == "seq_q_len");
    CHECK(block.seq_kv_len == "seq_kv_len");
    const Mod at = block.at(4, 8, 16);  // whole sequence: 8 queries, 16 keys; block of keys from 4
    for (int q = 0; q < 8; ++q)
      for (int kv = 0; kv < 4; ++kv) {
        CAPTURE(q, kv);
        CHECK(keeps(at, 0, 0, q, kv, {8, 4, 1}) == (kv + 4 <= q + 16 - 8));
      }
  }
  SECTION("bound arguments carry over and clashing names are renamed") {
    const Mod user = user_mod("mask_mod m(kv_offset: int) = kv_idx - kv_offset <= q_idx;", "m").bind("kv_offset", 3);
    const BlockMod block = block_view_mod(user);
    CHECK(block.kv_offset == "kv_offset_2");
    const Mod at = block.at(5, 20, 20);
    CHECK(keeps(at, 0, 0, 2, 0));  // 0 + 5 - 3 <= 2
    CHECK_FALSE(keeps(at, 0, 0, 1, 0));
  }
  SECTION("every offset shares one signature, and the tile classifier is exact on blocks") {
    const BlockMod block = block_view_mod(sliding_window_mod(4, true));
    CHECK(block.at(0, 64, 64).signature() == block.at(48, 64, 64).signature());
    const Mod at = block.at(16, 64, 64);
    ir::TileClassifier classifier(at.def());
    ir::Environment env = at.environment(64, 16, 1, 1);
    CHECK(classifier.classify(env, 0, 15, 0, 15) == ir::TileClass::Empty);   // keys 16.. after queries 0..15
    CHECK(classifier.classify(env, 40, 47, 0, 15) == ir::TileClass::Empty);  // keys 16..31 left the window
    CHECK(classifier.classify(env, 16, 31, 0, 15) == ir::TileClass::Partial);
  }
}
