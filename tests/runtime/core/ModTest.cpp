#include "runtime/core/Mod.h"

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

const ir::Module& test_module() {
  static const ir::Module module = ir::load_module_text("mods.attn", R"(
mask_mod window_mask(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;
score_mod scaled(factor: float, bias: float[H, N], flag: bool) = flag ? score * factor + bias[h, kv_idx] : score;
mask_mod pair(a: int[N, 2], c: int[N]) = a[b, 1] == c[b];
mask_mod square(m: bool[N, N]) = m[q_idx, kv_idx];
mask_mod everything = true;
)");
  return module;
}

Mod test_mod(const std::string& name) { return Mod::from_module(test_module(), name); }

bool keeps(const Mod& mod, int b, int h, int q, int kv) {
  ir::Environment env = mod.environment(16, 16, 4, 4);
  env.set_point(b, h, q, kv);
  return ir::evaluate(mod.def().body, env).as_bool();
}

float score_at(const Mod& mod, int b, int h, int q, int kv, float score) {
  ir::Environment env = mod.environment(16, 16, 4, 4);
  env.set_point(b, h, q, kv, score);
  return ir::evaluate(mod.def().body, env).f;
}

}  // namespace

TEST_CASE("a mod is taken from a module by name, optimised and unbound", "[runtime][mod]") {
  Mod mod = test_mod("window_mask");
  CHECK(mod.name() == "window_mask");
  CHECK(mod.kind() == dsl::ModKind::Mask);
  CHECK(mod.def().params.size() == 1);
  CHECK_FALSE(mod.fully_bound());
  CHECK(mod.unbound_params() == std::vector<std::string>{"window"});
  CHECK(test_mod("everything").fully_bound());
  CHECK(test_mod("scaled").kind() == dsl::ModKind::Score);
}

TEST_CASE("a missing mod name lists what the module defines", "[runtime][mod]") {
  CHECK_THROWS_WITH(Mod::from_module(test_module(), "window_msk"),
                    Catch::Contains("no mod named 'window_msk'") && Catch::Contains("did you mean 'window_mask'") &&
                        Catch::Contains("available: window_mask, scaled, pair, square, everything"));
}

TEST_CASE("bound scalars reach the interpreter", "[runtime][mod]") {
  Mod mod = test_mod("window_mask");
  mod.bind("window", 3);
  REQUIRE(mod.fully_bound());
  auto [q, kv, expected] = GENERATE(table<int, int, bool>(
      {{5, 5, true}, {5, 3, true}, {5, 2, false}, {5, 6, false}, {0, 0, true}, {2, 0, true}, {3, 0, false}}));
  CAPTURE(q, kv);
  CHECK(keeps(mod, 0, 0, q, kv) == expected);
}

TEST_CASE("binding a copy leaves the original alone", "[runtime][mod]") {
  Mod original = test_mod("window_mask");
  Mod copy = original;
  copy.bind("window", 2);
  CHECK(copy.fully_bound());
  CHECK_FALSE(original.fully_bound());
  original.bind("window", 10);
  CHECK(keeps(original, 0, 0, 9, 1));
  CHECK_FALSE(keeps(copy, 0, 0, 9, 1));
}

TEST_CASE("scalar arguments convert only exactly", "[runtime][mod]") {
  Mod scaled = test_mod("scaled");
  SECTION("an int converts to a float parameter") {
    scaled.bind("factor", 2);
    CHECK(std::get<ir::Value>(*scaled.argument(0)).type == ir::Type::Float);
    CHECK(std::get<ir::Value>(*scaled.argument(0)).f == 2.0f);
    scaled.bind("factor", int64_t{1} << 24);
    CHECK(std::get<ir::Value>(*scaled.argument(0)).f == 16777216.0f);
  }
  SECTION("an int a float cannot hold exactly is refused") {
    CHECK_THROWS_WITH(scaled.bind("factor", 16777217), Catch::Contains("not exactly a float"));
  }
  SECTION("a double narrows to a float parameter") {
    scaled.bind("factor", 0.1);
    CHECK(std::get<ir::Value>(*scaled.argument(0)).f == 0.1f);
  }
  SECTION("a float is refused for an int parameter") {
    Mod window = test_mod("window_mask");
    CHECK_THROWS_WITH(window.bind("window", 3.0f), Catch::Contains("mod 'window_mask'") &&
                                                       Catch::Contains("'window: int'") &&
                                                       Catch::Contains("a float does not convert"));
    CHECK_THROWS_AS(window.bind("window", 3.0), RuntimeError);
    CHECK_THROWS_WITH(window.bind("window", int64_t{1} << 33), Catch::Contains("32-bit"));
    CHECK_THROWS_WITH(window.bind("window", true), Catch::Contains("a bool does not convert"));
  }
  SECTION("a bool parameter takes only bools") {
    CHECK_THROWS_WITH(scaled.bind("flag", 1), Catch::Contains("only true or false"));
    scaled.bind("flag", false);
    CHECK(std::get<ir::Value>(*scaled.argument(2)).as_bool() == false);
    CHECK_THROWS_WITH(scaled.bind("factor", true), Catch::Contains("a bool does not convert"));
  }
  SECTION("a scalar for a tensor parameter and a tensor for a scalar one") {
    CHECK_THROWS_WITH(scaled.bind("bias", 1.0f), Catch::Contains("tensor parameter"));
    CHECK_THROWS_WITH(scaled.bind("factor", Tensor::zeros(DType::F32, {1})), Catch::Contains("scalar parameter"));
  }
}

TEST_CASE("an unknown parameter name is reported with the mod's parameters", "[runtime][mod]") {
  Mod scaled = test_mod("scaled");
  CHECK_THROWS_WITH(scaled.bind("factr", 1.0f), Catch::Contains("mod 'scaled' has no parameter 'factr'") &&
                                                    Catch::Contains("did you mean 'factor'") &&
                                                    Catch::Contains("factor: float, bias: float[H, N], flag: bool"));
  CHECK_THROWS_WITH(test_mod("everything").bind("x", 1), Catch::Contains("it has no parameters"));
}

TEST_CASE("tensor arguments are checked against the declared type", "[runtime][mod]") {
  Mod scaled = test_mod("scaled");
  SECTION("a tensor of the right rank and class binds, in any float storage") {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      CAPTURE(dtype_name(dtype));
      CHECK_NOTHROW(scaled.bind("bias", Tensor::zeros(dtype, {4, 16})));
    }
  }
  SECTION("wrong rank") {
    CHECK_THROWS_WITH(scaled.bind("bias", Tensor::zeros(DType::F32, {4})),
                      Catch::Contains("mod 'scaled'") && Catch::Contains("'bias: float[H, N]'") &&
                          Catch::Contains("rank 2, the tensor rank 1"));
  }
  SECTION("wrong element class") {
    CHECK_THROWS_WITH(scaled.bind("bias", Tensor::zeros(DType::I32, {4, 4})), Catch::Contains("fp32, fp16 or bf16"));
    Mod pair = test_mod("pair");
    CHECK_THROWS_WITH(pair.bind("c", Tensor::zeros(DType::F32, {4})), Catch::Contains("int32 or int64"));
    CHECK_NOTHROW(pair.bind("c", Tensor::zeros(DType::I64, {4})));
    Mod square = test_mod("square");
    CHECK_THROWS_WITH(square.bind("m", Tensor::zeros(DType::I32, {3, 3})), Catch::Contains("bool or uint8"));
    CHECK_NOTHROW(square.bind("m", Tensor::zeros(DType::U8, {3, 3})));
  }
  SECTION("literal extents must match") {
    Mod pair = test_mod("pair");
    CHECK_THROWS_WITH(pair.bind("a", Tensor::zeros(DType::I32, {4, 3})),
                      Catch::Contains("dimension 1 must have extent 2, not 3"));
  }
  SECTION("a shared extent name needs equal sizes across parameters, whichever is bound first") {
    Mod pair = test_mod("pair");
    pair.bind("a", Tensor::zeros(DType::I32, {4, 2}));
    CHECK_THROWS_WITH(pair.bind("c", Tensor::zeros(DType::I32, {5})),
                      Catch::Contains("extent 'N' is 5 here but 4 in parameter 'a'"));
    Mod reversed = test_mod("pair");
    reversed.bind("c", Tensor::zeros(DType::I32, {5}));
    CHECK_THROWS_WITH(reversed.bind("a", Tensor::zeros(DType::I32, {4, 2})), Catch::Contains("extent 'N'"));
    // Rebinding the same parameter replaces it rather than conflicting with itself.
    pair.bind("a", Tensor::zeros(DType::I32, {5, 2}));
    CHECK_NOTHROW(pair.bind("c", Tensor::zeros(DType::I32, {5})));
  }
  SECTION("a shared extent name within one tensor") {
    Mod square = test_mod("square");
    CHECK_THROWS_WITH(square.bind("m", Tensor::zeros(DType::Bool, {3, 4})),
                      Catch::Contains("extent 'N' is 3 in dimension 0 but 4 in dimension 1"));
  }
  SECTION("empty dimensions and undefined tensors") {
    CHECK_THROWS_WITH(scaled.bind("bias", Tensor::zeros(DType::F32, {0, 4})), Catch::Contains("empty"));
    CHECK_THROWS_WITH(scaled.bind("bias", Tensor()), Catch::Contains("undefined"));
  }
}

TEST_CASE("bound tensors are read through their strides", "[runtime][mod]") {
  Mod scaled = test_mod("scaled");
  // bias[h, kv] = 10 h + kv, stored transposed.
  std::vector<float> storage(4 * 16);
  for (int h = 0; h < 4; ++h)
    for (int kv = 0; kv < 16; ++kv) storage[kv * 4 + h] = static_cast<float>(10 * h + kv);
  scaled.bind("factor", 2.0f).bind("bias", Tensor::from_data(storage.data(), DType::F32, {4, 16}, {1, 4}));
  scaled.bind("flag", true);
  CHECK(score_at(scaled, 0, 3, 0, 7, 1.5f) == 1.5f * 2.0f + 37.0f);
  CHECK(score_at(scaled, 0, 1, 0, 15, -1.0f) == -2.0f + 25.0f);
  scaled.bind("flag", false);
  CHECK(score_at(scaled, 0, 1, 0, 15, -1.0f) == -1.0f);
}

TEST_CASE("the bound mod keeps its tensors alive", "[runtime][mod]") {
  Mod pair = test_mod("pair");
  {
    Tensor a = Tensor::from_vector(std::vector<int32_t>{0, 7, 0, 8}, {2, 2});
    Tensor c = Tensor::from_vector(std::vector<int32_t>{7, 9});
    pair.bind("a", a).bind("c", c);
  }
  CHECK(keeps(pair, 0, 0, 0, 0));
  CHECK_FALSE(keeps(pair, 1, 0, 0, 0));
}

TEST_CASE("using a mod with unbound parameters or device tensors is refused", "[runtime][mod]") {
  Mod scaled = test_mod("scaled");
  scaled.bind("factor", 1.0f);
  ir::Environment env;
  CHECK_THROWS_WITH(scaled.bind_into(env),
                    Catch::Contains("mod 'scaled'") && Catch::Contains("parameters bias, flag not bound"));
  CHECK_THROWS_WITH(scaled.environment(1, 1, 1, 1), Catch::Contains("not bound"));

  float device_memory[64] = {};
  scaled.bind("flag", true).bind("bias", Tensor::from_data(device_memory, DType::F32, {4, 16}, {}, Device::Cuda));
  CHECK(scaled.fully_bound());
  CHECK_THROWS_WITH(scaled.bind_into(env), Catch::Contains("'bias'") && Catch::Contains("cuda tensor"));
}

TEST_CASE("signatures ignore scalar values and tensor extents but not storage types", "[runtime][mod]") {
  Mod a = test_mod("window_mask");
  Mod b = test_mod("window_mask");
  a.bind("window", 3);
  b.bind("window", 100);
  CHECK(a.signature() == b.signature());
  CHECK(a.signature() == test_mod("window_mask").signature());

  Mod f32 = test_mod("scaled");
  Mod f32_other = test_mod("scaled");
  Mod f16 = test_mod("scaled");
  f32.bind("bias", Tensor::zeros(DType::F32, {4, 8}));
  f32_other.bind("bias", Tensor::zeros(DType::F32, {2, 100}));
  f16.bind("bias", Tensor::zeros(DType::F16, {4, 8}));
  CHECK(f32.signature() == f32_other.signature());
  CHECK(f32.signature() == test_mod("scaled").signature());  // unbound: default fp32 storage
  CHECK(f32.signature() != f16.signature());
  CHECK(f16.storage_types()[1] == DType::F16);
  CHECK(a.signature() != f32.signature());
}
