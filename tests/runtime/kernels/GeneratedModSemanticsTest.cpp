// The CUDA generated code's semantics, checked on the CPU: the text compiler/CudaCodegen.cpp
// generates is compiled as host C++ (with the embedded runtime/kernels/mod_abi.cuh) into a shared
// object with the system C++ compiler (tests/support/HostBuild.h), loaded with dlopen, and
// evaluated at random points of random expressions (tests/support/RandomExpr.h) and of the built-in
// mods. Every result that involves no transcendental function must be the interpreter's bit for
// bit, including x / 0, x % 0, overflow, clamped indices, inf and NaN (any NaN matches any NaN),
// and the first out-of-range index with bounds checking on. The transcendental functions are
// fast approximations (runtime/kernels/fast_math.cuh) whose bounds FastMathTest.cpp checks; here
// results that depend on them are counted, and built-in mods using them are held to the bound.
// The device build of the same helpers uses the _rn intrinsics and the same formulas (mod_abi.cuh).

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "compiler/CudaCodegen.h"
#include "compiler/Frontend.h"
#include "compiler/IRMutator.h"
#include "compiler/Interpreter.h"
#include "compiler/Pipeline.h"
#include "compiler/Prelude.h"
#include "compiler/Printer.h"
#include "compiler/TileClassifier.h"
#include "runtime/cuda/EmbeddedKernels.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/kernels/mod_abi.cuh"
#include "tests/support/HostBuild.h"
#include "tests/support/RandomExpr.h"
#include "tests/support/TestPaths.h"

using namespace attnc;
using namespace attnc::ir;
using namespace attnc::ir::test;
using attnc::test::HostBuild;
using attnc::test::has_host_compiler;

namespace {

// Whether `expr` calls a function of runtime/kernels/fast_math.cuh (approximate by design: its
// bounds are FastMathTest.cpp's business), or one the C library computes on both sides (exact
// when the host compiler cannot fold the call, i.e. at -O0).
bool calls_any(const Expr& expr, std::initializer_list<Op> ops) {
  bool found = false;
  for_each_node(expr, [&](const Expr& node) {
    if (node->kind != Kind::Call) return;
    for (Op op : ops) found = found || node->op == op;
  });
  return found;
}
bool uses_fast_math(const Expr& expr) {
  return calls_any(expr, {Op::Exp, Op::Exp2, Op::Log, Op::Log2, Op::Tanh, Op::Sigmoid, Op::Rsqrt});
}
bool uses_library_math(const Expr& expr) { return calls_any(expr, {Op::Sin, Op::Cos, Op::Pow}); }

attnc_abi::ModPoint point_of(const Environment& env) {
  auto get = [&](Builtin b) { return env.builtins[static_cast<int>(b)].as_int(); };
  return {get(Builtin::Batch), get(Builtin::Head),  get(Builtin::QIdx),     get(Builtin::KvIdx),
          get(Builtin::QLen),  get(Builtin::KvLen), get(Builtin::NumHeads), get(Builtin::NumKvHeads)};
}

attnc_abi::TileBox tile_of(const Environment& env) {
  auto get = [&](Builtin b) { return env.builtins[static_cast<int>(b)].as_int(); };
  return {get(Builtin::QTileFirst), get(Builtin::QTileLast), get(Builtin::KvTileFirst), get(Builtin::KvTileLast)};
}

// The generated function's result as an interpreter Value.
Value result_value(Type type, const unsigned char* bytes) {
  switch (type) {
    case Type::Bool: return Value::of_bool(bytes[0] != 0);
    case Type::Int: {
      int32_t v;
      std::memcpy(&v, bytes, 4);
      return Value::of_int(v);
    }
    case Type::Int64: {
      int64_t v;
      std::memcpy(&v, bytes, 8);
      return Value::of_int64(v);
    }
    case Type::Float: {
      float v;
      std::memcpy(&v, bytes, 4);
      return Value::of_float(v);
    }
  }
  return {};
}

using EvalFn = void (*)(const void* params, const attnc_abi::ModPoint* p, const attnc_abi::TileBox* tile, float score,
                        attnc_abi::BoundsReport* report, void* out);

struct RandomCase {
  Expr expr;
  RandomExprOptions options;
  std::vector<ParamDecl> decls;
  std::vector<DType> storage;
  CudaModSource layout;
};

// Builds `count` random expressions into one shared object and checks each at `points` random
// environments. `strict_library`: whether results that depend on sin/cos/pow must be exact too
// (they are when the compiler cannot fold library calls, i.e. at -O0: both sides call libm).
// Results that depend on a fast-math function are evaluated (they must not crash) but not compared.
void check_random_expressions(uint32_t seed, int count, bool check_bounds, const std::string& flags,
                              bool strict_library) {
  std::mt19937 rng(seed);
  std::vector<RandomCase> cases;
  std::vector<std::pair<std::string, std::string>> files;
  std::string wrapper = "#include \"mod_abi.cuh\"\n#include <cstring>\n";
  const Type types[] = {Type::Float, Type::Bool, Type::Int, Type::Int64};
  for (int i = 0; i < count; ++i) {
    RandomCase c;
    Type type = types[i % 4];
    c.options.use_int64 = type == Type::Int64 || i % 3 == 0;
    c.options.use_tile_builtins = c.options.use_int64;
    c.expr = random_expr(rng, type, 4, c.options);
    c.decls = random_param_decls(c.options);
    c.storage = random_param_storage(c.options);
    ModDef holder;  // carries the parameters into ModParams; its body is not used
    holder.kind = ModKind::Score;
    holder.params = c.decls;
    holder.body = make_builtin(Builtin::Score);
    CudaCodegenOptions options;
    options.check_bounds = check_bounds;
    c.layout = generate_cuda_mods(&holder, c.storage, nullptr, {}, options);
    std::string text = c.layout.text + "namespace attnc_gen {\n" +
                       generate_cuda_expr_function(c.expr, "eval", c.decls, c.storage, check_bounds) + "}\n";
    files.emplace_back(fmt::format("case{}.cuh", i), text);
    wrapper += fmt::format(
        "namespace case{0} {{\n#include \"case{0}.cuh\"\n}}\n"
        "extern \"C\" void eval{0}(const void* params, const attnc_abi::ModPoint* p, const attnc_abi::TileBox* tile,"
        " float score, attnc_abi::BoundsReport* report, void* out) {{\n"
        "  auto v = case{0}::attnc_gen::eval(score, *p, *tile,"
        " *static_cast<const case{0}::attnc_gen::ModParams*>(params), report);\n"
        "  std::memcpy(out, &v, sizeof v);\n}}\n",
        i);
    cases.push_back(std::move(c));
  }
  HostBuild build;
  INFO("flags " << flags);
  if (!build.build(files, wrapper, flags + " " + attnc::test::source_root_include(attnc::test::source_dir())))
    FAIL(build.error());

  int checked = 0, loose = 0, loose_mismatches = 0, reported = 0, approximate = 0;
  for (int i = 0; i < count; ++i) {
    const RandomCase& c = cases[i];
    auto eval = build.symbol<EvalFn>(fmt::format("eval{}", i));
    REQUIRE(eval != nullptr);
    CompiledExpr interpreter(c.expr);
    const bool fast_math = uses_fast_math(c.expr);
    const bool library_math = uses_library_math(c.expr);
    for (int trial = 0; trial < 16; ++trial) {
      ir::test::RandomEnvironment random_env = random_environment(rng, c.options);
      Environment& env = random_env.env;
      std::vector<unsigned char> params = cuda::pack_mod_params(c.layout, env.params, {});
      attnc_abi::ModPoint point = point_of(env);
      attnc_abi::TileBox tile = tile_of(env);
      const float score = env.builtins[static_cast<int>(Builtin::Score)].f;

      // The interpreter clamps; with bounds checking it also names the first bad index.
      env.check_bounds = false;
      Value want = interpreter.evaluate(env);
      std::optional<IndexOutOfRange> out_of_range;
      if (check_bounds) {
        env.check_bounds = true;
        try {
          interpreter.evaluate(env);
        } catch (const IndexOutOfRange& e) {
          out_of_range = e;
        }
      }
      attnc_abi::BoundsReport report{};
      unsigned char out[8] = {};
      eval(params.data(), &point, &tile, score, &report, out);
      Value got = result_value(c.expr->type, out);
      CAPTURE(seed, i, trial, print_expr(c.expr), to_string(want), to_string(got));
      if (fast_math) {
        ++approximate;
      } else if (library_math && !strict_library) {
        ++loose;
        if (!ir::test::same_result(want, got)) ++loose_mismatches;
      } else {
        CHECK(ir::test::same_result(want, got));
      }
      if (check_bounds) {
        CHECK((report.failed != 0) == out_of_range.has_value());
        if (out_of_range && report.failed) {
          ++reported;
          CHECK(report.param == static_cast<int32_t>(out_of_range->param));
          CHECK(report.dim == static_cast<int32_t>(out_of_range->dim));
          CHECK(report.index == out_of_range->index);
          CHECK(report.extent == out_of_range->extent);
          CHECK(report.q_idx == point.q_idx);
          CHECK(report.kv_idx == point.kv_idx);
        }
      }
      ++checked;
    }
  }
  CHECK(checked == count * 16);
  CHECK(approximate < checked / 2);  // most results are still compared bit for bit
  if (check_bounds) CHECK(reported > 0);  // the random indices do leave their tensors
  // Optimised builds may fold library calls with other rounding: allow rare differences.
  CHECK(loose_mismatches * 20 <= loose + 1);
}

}  // namespace

TEST_CASE("Generated CUDA compiled as host C++ agrees with the interpreter on random expressions",
          "[cudagen][semantics][slow]") {
  if (!has_host_compiler()) {
    WARN("no host C++ compiler (g++ or $CXX): the generated code's semantics were not checked");
    return;
  }
  SECTION("unoptimised: every exact result bit for bit, sin, cos and pow included") {
    check_random_expressions(20240601, 160, false, "-O0", true);
  }
  SECTION("optimised: exact operations bit for bit") { check_random_expressions(7, 120, false, "-O2", false); }
  SECTION("with bounds checking: the same values, and the interpreter's first out-of-range index") {
    check_random_expressions(99, 120, true, "-O0", true);
  }
}

TEST_CASE("Generated built-in mods and tile classifiers compiled as host C++ agree with the interpreter",
          "[cudagen][semantics]") {
  if (!has_host_compiler()) {
    WARN("no host C++ compiler (g++ or $CXX): the generated code's semantics were not checked");
    return;
  }
  const Module& prelude = prelude_module();
  const Module extra = load_module_text("extra.attn", R"(
score_mod softcap_alibi(cap: float, slopes: float[H]) = cap * tanh((score - slopes[h] * abs(q_idx - kv_idx)) / cap);
mask_mod document_causal(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx] && kv_idx <= q_idx;
mask_mod window_or_sink(window: int, sinks: int) = (kv_idx <= q_idx && q_idx - kv_idx < window) || kv_idx < sinks;
)");
  struct Pair {
    const Module* module;
    const char* score;
    const char* mask;
  };
  const Pair pairs[] = {
      {&prelude, "alibi", "causal"},
      {&prelude, "softcap", "sliding_window_causal"},
      {&prelude, "additive_bias", "sliding_window_symmetric"},
      {&prelude, "softcap", "prefix_lm"},
      {&prelude, "alibi", "document"},
      {&prelude, "softcap", "causal_bottom_right"},
      {&extra, "softcap_alibi", "document_causal"},
      {&extra, "softcap_alibi", "window_or_sink"},
  };
  std::mt19937 rng(1234);
  std::vector<std::pair<std::string, std::string>> files;
  std::string wrapper = "#include \"mod_abi.cuh\"\n";
  std::vector<ModDef> scores, masks;
  std::vector<CudaModSource> layouts;
  for (size_t i = 0; i < std::size(pairs); ++i) {
    scores.push_back(optimize(*pairs[i].module, *pairs[i].module->find(pairs[i].score)));
    masks.push_back(optimize(*pairs[i].module, *pairs[i].module->find(pairs[i].mask)));
    layouts.push_back(generate_cuda_mods(&scores[i], {}, &masks[i], {}));
    files.emplace_back(fmt::format("mods{}.cuh", i), layouts[i].text);
    wrapper += fmt::format(
        "namespace mods{0} {{\n#include \"mods{0}.cuh\"\n}}\n"
        "extern \"C\" void run{0}(const void* raw, const attnc_abi::ModPoint* p, const attnc_abi::TileBox* tile,"
        " float score, float* out_score, int* out_keep, int* out_class) {{\n"
        "  const auto& params = *static_cast<const mods{0}::attnc_gen::ModParams*>(raw);\n"
        "  *out_score = mods{0}::attnc_gen::score_mod(score, *p, params, nullptr);\n"
        "  *out_keep = mods{0}::attnc_gen::mask_mod(*p, params, nullptr) ? 1 : 0;\n"
        "  *out_class = mods{0}::attnc_gen::tile_class(*tile, *p, params);\n}}\n",
        i);
  }
  HostBuild build;
  if (!build.build(files, wrapper, "-O1 " + attnc::test::source_root_include(attnc::test::source_dir())))
    FAIL(build.error());
  using RunFn = void (*)(const void*, const attnc_abi::ModPoint*, const attnc_abi::TileBox*, float, float*, int*, int*);

  for (size_t i = 0; i < std::size(pairs); ++i) {
    CAPTURE(pairs[i].score, pairs[i].mask);
    auto run = build.symbol<RunFn>(fmt::format("run{}", i));
    REQUIRE(run != nullptr);
    // Arguments: small tensors and scalars chosen per parameter.
    std::vector<std::vector<float>> float_buffers;
    std::vector<std::vector<int32_t>> int_buffers;
    auto bind = [&](const ModDef& def) {
      std::vector<ParamBinding> args;
      for (const ParamDecl& param : def.params) {
        if (!param.is_tensor()) {
          if (param.elem == Type::Float)
            args.emplace_back(Value::of_float(std::uniform_real_distribution<float>(0.5f, 30)(rng)));
          else
            args.emplace_back(Value::of_int(std::uniform_int_distribution<int32_t>(1, 12)(rng)));
          continue;
        }
        TensorArg t;
        int64_t count = 1;
        for (size_t d = 0; d < param.rank(); ++d) t.shape.push_back(d + 1 == param.rank() ? 24 : 3);
        t.strides.assign(param.rank(), 1);
        for (size_t d = param.rank(); d-- > 0;) {
          t.strides[d] = count;
          count *= t.shape[d];
        }
        if (param.elem == Type::Float) {
          float_buffers.emplace_back(count);
          for (float& x : float_buffers.back()) x = std::uniform_real_distribution<float>(-2, 2)(rng);
          t.data = float_buffers.back().data();
          t.dtype = DType::F32;
        } else {
          int_buffers.emplace_back(count);
          int32_t doc = 0;
          for (int32_t& x : int_buffers.back()) x = (doc += std::uniform_int_distribution<int>(0, 5)(rng) == 0);
          t.data = int_buffers.back().data();
          t.dtype = DType::I32;
        }
        args.emplace_back(t);
      }
      return args;
    };
    float_buffers.reserve(8);
    int_buffers.reserve(8);
    std::vector<ParamBinding> score_args = bind(scores[i]), mask_args = bind(masks[i]);
    std::vector<unsigned char> params = cuda::pack_mod_params(layouts[i], score_args, mask_args);
    Environment score_env, mask_env;
    score_env.params = score_args;
    mask_env.params = mask_args;
    CompiledExpr score_body(scores[i].body), mask_body(masks[i].body);
    const bool approximate_score = uses_fast_math(scores[i].body);
    TileClassifier classifier(masks[i]);
    for (int trial = 0; trial < 300; ++trial) {
      auto small = [&](int hi) { return std::uniform_int_distribution<int32_t>(0, hi)(rng); };
      attnc_abi::ModPoint p{small(2), small(3), small(30), small(30), 24, 24, 4, 2};
      if (trial % 3 == 0) p.q_len = 16;
      int32_t q0 = small(30), k0 = small(30);
      attnc_abi::TileBox tile{q0, q0 + small(8), k0, k0 + small(8)};
      float score = std::uniform_real_distribution<float>(-20, 20)(rng);
      for (Environment* env : {&score_env, &mask_env}) {
        env->set_point(p.b, p.h, p.q_idx, p.kv_idx, score);
        env->set_sizes(p.q_len, p.kv_len, p.num_heads, p.num_kv_heads);
      }
      float got_score = 0;
      int got_keep = 0, got_class = 0;
      run(params.data(), &p, &tile, score, &got_score, &got_keep, &got_class);
      CAPTURE(trial, p.b, p.h, p.q_idx, p.kv_idx, tile.q_first, tile.q_last, tile.kv_first, tile.kv_last);
      const Value want_score = score_body.evaluate(score_env);
      if (approximate_score) {
        // cap * tanh(...): tanh.approx's 2^-11 plus the C library's and the multiply's roundings.
        CAPTURE(want_score.f, got_score);
        CHECK(std::fabs(got_score - want_score.f) <= std::exp2(-10.9) * std::fabs(want_score.f));
      } else {
        CHECK(ir::test::same_result(want_score, Value::of_float(got_score)));
      }
      CHECK(mask_body.evaluate(mask_env).as_bool() == (got_keep != 0));
      CHECK(static_cast<int>(classifier.classify(mask_env, tile.q_first, tile.q_last, tile.kv_first, tile.kv_last)) ==
            got_class);
    }
  }
}

TEST_CASE("Packing mod arguments checks each one against its field", "[cudagen]") {
  const Module module = load_module_text("p.attn", "mask_mod m(w: int, ids: int[B, S]) = ids[b, q_idx] < w;");
  ModDef mask = optimize(module, *module.find("m"));
  std::vector<DType> storage = {DType::I32, DType::I64};
  CudaModSource layout = generate_cuda_mods(nullptr, {}, &mask, storage);
  std::vector<int64_t> ids(6, 0);
  TensorArg t{ids.data(), DType::I64, {2, 3}, {3, 1}};
  std::vector<ParamBinding> good = {Value::of_int(5), t};
  std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, {}, good);
  REQUIRE(bytes.size() == layout.params_size);
  int32_t w = 0;
  std::memcpy(&w, bytes.data() + layout.fields[0].offset, 4);
  CHECK(w == 5);
  attnc_abi::TensorParam packed{};
  std::memcpy(&packed, bytes.data() + layout.fields[1].offset, sizeof packed);
  CHECK(packed.data == ids.data());
  CHECK(packed.rank == 2);
  CHECK(packed.shape[1] == 3);
  CHECK(packed.strides[0] == 3);

  SECTION("a float where an int is expected") {
    std::vector<ParamBinding> bad = {Value::of_float(5), t};
    CHECK_THROWS_WITH(cuda::pack_mod_params(layout, {}, bad), Catch::Contains("needs a scalar int"));
  }
  SECTION("another storage type than compiled for") {
    TensorArg other = t;
    other.dtype = DType::I32;
    std::vector<ParamBinding> bad = {Value::of_int(5), other};
    CHECK_THROWS_WITH(cuda::pack_mod_params(layout, {}, bad), Catch::Contains("compiled for int64 storage, got int32"));
  }
  SECTION("a missing argument") {
    std::vector<ParamBinding> bad = {Value::of_int(5)};
    CHECK_THROWS_WITH(cuda::pack_mod_params(layout, {}, bad), Catch::Contains("is not bound"));
  }
}
