#include "runtime/families/flash/FlashCpu.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "compiler/Frontend.h"
#include "compiler/Printer.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/RandomExpr.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;

// Tolerances. With fp32 products the flash kernel computes dot products, softmax and the
// accumulator in fp32 while the reference (standard_attention) uses fp64, so results differ by fp32
// rounding: outputs and LSEs agree within kTolF32 * (1 + |reference|). fp16 / bf16 inputs are
// rounded once when the tensor is made, and both kernels read the same rounded values, so the same
// tolerance applies; fp16 / bf16 outputs are compared after the reference's fp32 output is rounded
// the same way, to within one unit in the last place of that format (kTolF16, kTolBF16, relative).
// With bf16 products (bf16 / fp16 inputs on AVX512-BF16) P is rounded to bf16 (relative error up
// to 2^-9) before P·V, and fp16 inputs are rounded to bf16 on load: outputs agree within
// kTolBf16Products * (1 + |reference|); LSEs, which come from the fp32 P, within kTolF32 for bf16
// inputs (the products are exact) and kTolBf16Products for fp16 inputs.
namespace {

constexpr double kTolF32 = 1e-5;
constexpr double kTolF16 = 1.0 / 1024;
constexpr double kTolBF16 = 1.0 / 128;
constexpr double kTolBf16Products = 1.0 / 128;

// Every micro-kernel set this CPU runs, best first.
std::vector<cpu::CpuIsa> supported_isas() {
  std::vector<cpu::CpuIsa> isas;
  for (cpu::CpuIsa isa : {cpu::CpuIsa::Avx512Bf16, cpu::CpuIsa::Avx512, cpu::CpuIsa::Avx2, cpu::CpuIsa::Scalar}) {
    if (cpu::cpu_supports(isa)) isas.push_back(isa);
  }
  return isas;
}

using Shape = std::vector<int64_t>;

// Multiples of 1/8 in [-1, 1]: with a scale that is a power of two, every dot product (D <= 128)
// is exact in fp32 and in fp64, so a mod sees bit-identical scores in both kernels even when it
// is discontinuous in the score (floor, comparisons).
Tensor exact_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-8, 8);
  int64_t n = 1;
  for (int64_t extent : shape) n *= extent;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& x : values) x = static_cast<float>(dist(rng)) / 8.0f;
  return Tensor::from_vector(values, shape);
}

Mod user_mod(const std::string& text, const std::string& name) {
  return Mod::from_module(ir::load_module_text("user.attn", text), name);
}

// Compares element by element: NaN must meet NaN, infinities must be equal, finite values must
// agree within tolerance * (1 + |expected|). Reports the count and the first mismatch.
void check_same(const Tensor& got, const Tensor& expected, double tolerance, const char* what) {
  std::vector<float> g = got.to_float_vector(), e = expected.to_float_vector();
  REQUIRE(g.size() == e.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok;
    if (std::isnan(e[i])) {
      ok = std::isnan(g[i]);
    } else if (std::isinf(e[i])) {
      ok = g[i] == e[i];
    } else {
      ok = std::fabs(static_cast<double>(g[i]) - e[i]) <= tolerance * (1.0 + std::fabs(e[i]));
    }
    if (!ok && mismatches++ == 0) first = i;
  }
  CAPTURE(what, mismatches, first);
  if (mismatches) {
    CAPTURE(g[first], e[first]);
    CHECK(mismatches == 0);
  } else {
    CHECK(mismatches == 0);
  }
}

struct Inputs {
  Tensor q, k, v;
};

Inputs make_inputs(int64_t B, int64_t H, int64_t Hkv, int64_t S, int64_t Skv, int64_t D, int64_t Dv, DType dtype,
                   uint32_t seed) {
  return {uniform_tensor(seed, dtype, {B, H, S, D}), uniform_tensor(seed + 1, dtype, {B, Hkv, Skv, D}),
          uniform_tensor(seed + 2, dtype, {B, Hkv, Skv, Dv})};
}

// The tolerances of a call's output and LSE (see the top of the file), by the precision it runs in.
std::pair<double, double> tolerances(const Inputs& in, const FlashOptions& flash) {
  if (std::string(flash_cpu_precision(in.q, in.k, in.v, flash)) == "fp32") return {kTolF32, kTolF32};
  const bool any_fp16 = in.q.dtype() == DType::F16 || in.k.dtype() == DType::F16 || in.v.dtype() == DType::F16;
  return {kTolBf16Products, any_fp16 ? kTolBf16Products : kTolF32};
}

// Runs both kernels (flash with `flash` options) and compares outputs and LSEs, within the
// tolerances of the precision the call runs in.
void check_against_reference(const Inputs& in, const AttentionOptions& options, const FlashOptions& flash = {}) {
  Tensor ref_lse, flash_lse;
  Tensor expected = standard_attention(in.q, in.k, in.v, options, &ref_lse);
  Tensor got = Tensor::empty(DType::F32, expected.shape());
  flash_attention(in.q, in.k, in.v, got, options, flash, &flash_lse);
  const auto [out_tolerance, lse_tolerance] = tolerances(in, flash);
  check_same(got, expected, out_tolerance, "out");
  check_same(flash_lse, ref_lse, lse_tolerance, "lse");
}

// A tensor with `shape` whose storage is laid out in another order (`order` lists the dims from
// outermost to innermost) and, when `spread` > 1, with gaps between consecutive elements of the
// innermost dim, filled from `source` (same shape).
Tensor strided_copy(const Tensor& source, std::vector<size_t> order, int64_t spread) {
  const Shape& shape = source.shape();
  std::vector<int64_t> strides(shape.size());
  int64_t stride = spread;
  for (size_t n = order.size(); n-- > 0;) {
    strides[order[n]] = stride;
    stride *= shape[order[n]];
  }
  auto storage =
      std::shared_ptr<void>(std::calloc(static_cast<size_t>(stride) + 1, dtype_size(source.dtype())), std::free);
  Tensor view = Tensor::from_storage(storage, storage.get(), source.dtype(), shape, strides);
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t flat = 0; flat < source.numel(); ++flat) {
    int64_t rest = flat;
    for (size_t d = shape.size(); d-- > 0;) {
      index[d] = rest % shape[d];
      rest /= shape[d];
    }
    view.set_float(index, source.get_float(index));
  }
  return view;
}

}  // namespace

TEST_CASE("flash attention without mods matches the reference over odd shapes, GQA and MQA", "[runtime][cpu][flash]") {
  auto [B, H, Hkv, S, Skv, D, Dv] = GENERATE(table<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>({
      {1, 1, 1, 1, 1, 32, 32},      // a single element
      {2, 4, 2, 7, 65, 64, 64},     // GQA, few queries, a partial key tile
      {1, 4, 2, 65, 130, 80, 80},   // GQA, q_len != kv_len, D not a multiple of 16
      {1, 2, 1, 130, 7, 128, 128},  // MQA, more queries than keys
      {1, 4, 4, 65, 65, 32, 48},    // Dv != D
      {1, 2, 2, 130, 130, 128, 64},
  }));
  DType dtype = GENERATE(DType::F32, DType::F16, DType::BF16);
  for (cpu::CpuIsa isa : supported_isas()) {
    CAPTURE(B, H, Hkv, S, Skv, D, Dv, dtype_name(dtype), cpu::cpu_isa_name(isa));
    FlashOptions flash;
    flash.isa = isa;
    check_against_reference(make_inputs(B, H, Hkv, S, Skv, D, Dv, dtype, 7), {}, flash);
  }
}

TEST_CASE("bf16 products: the error rounding P (and fp16 inputs) to bf16 adds, measured", "[runtime][cpu][flash][bf16]") {
  // The same bf16 / fp16 inputs through fp32 products and through bf16 products, against the fp64
  // reference: ||out - ref|| / ||ref|| and the largest elementwise error. docs/cpu-backend.md
  // quotes these figures.
  if (!cpu::cpu_supports(cpu::CpuIsa::Avx512Bf16)) {
    WARN("this CPU has no AVX512-BF16: the bf16 products were not measured");
    return;
  }
  const DType dtype = GENERATE(DType::BF16, DType::F16);
  const Mod causal = causal_mod();
  const Inputs in = make_inputs(1, 4, 4, 512, 512, 128, 128, dtype, 71);
  AttentionOptions options;
  options.mask_mod = &causal;
  const Tensor ref = standard_attention(in.q, in.k, in.v, options);
  auto errors = [&](bool bf16) {
    FlashOptions flash;
    flash.allow_bf16 = bf16;
    Tensor out = Tensor::empty(DType::F32, ref.shape());
    flash_attention(in.q, in.k, in.v, out, options, flash);
    const std::vector<float> a = out.to_float_vector(), b = ref.to_float_vector();
    double diff = 0, norm = 0, worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
      norm += double(b[i]) * b[i];
      worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
    }
    return std::pair{std::sqrt(diff / norm), worst};
  };
  const auto [fp32_relative, fp32_worst] = errors(false);
  const auto [bf16_relative, bf16_worst] = errors(true);
  CAPTURE(dtype_name(dtype), fp32_relative, fp32_worst, bf16_relative, bf16_worst);
  CHECK(fp32_relative < 1e-6);
  CHECK(bf16_relative < (dtype == DType::BF16 ? 3e-3 : 6e-3));
  CHECK(bf16_worst < kTolBf16Products);
  WARN(dtype_name(dtype) << " inputs, causal, S=512, D=128: fp32 products relative error " << fp32_relative
                         << " (max " << fp32_worst << "); bf16 products " << bf16_relative << " (max " << bf16_worst
                         << ")");
}

TEST_CASE("flash attention honours an explicit scale and writes fp16 and bf16 outputs", "[runtime][cpu][flash]") {
  Inputs in = make_inputs(1, 2, 1, 70, 90, 64, 64, DType::BF16, 11);
  AttentionOptions options;
  options.scale = 0.3f;
  check_against_reference(in, options);

  auto [dtype, tolerance] = GENERATE(table<DType, double>({{DType::F16, kTolF16}, {DType::BF16, kTolBF16}}));
  CAPTURE(dtype_name(dtype));
  Tensor expected = standard_attention(in.q, in.k, in.v, options);
  Tensor got = Tensor::empty(dtype, expected.shape());
  Tensor lse = Tensor::empty(dtype, {1, 2, 70});
  Tensor ref_lse;
  standard_attention(in.q, in.k, in.v, options, &ref_lse);
  flash_attention(in.q, in.k, in.v, got, options, &lse);
  const double products = tolerances(in, {}).first;  // bf16 products round P: at least that
  check_same(got, expected, std::max(tolerance, products), "out");
  check_same(lse, ref_lse, tolerance, "lse");
}

TEST_CASE("flash attention reads non-contiguous q, k, v and writes non-contiguous out and lse",
          "[runtime][cpu][flash]") {
  Inputs dense = make_inputs(2, 4, 2, 67, 75, 64, 40, DType::F32, 21);
  DType dtype = GENERATE(DType::F32, DType::BF16);
  int64_t spread = GENERATE(1, 2);  // 2: the head dim itself is strided
  CAPTURE(dtype_name(dtype), spread);
  auto convert = [&](const Tensor& t) { return Tensor::from_vector(t.to_float_vector(), t.shape(), dtype); };
  // (B, S, H, D) storage, the layout of most model code, viewed as (B, H, S, D).
  Inputs in{strided_copy(convert(dense.q), {0, 2, 1, 3}, spread), strided_copy(convert(dense.k), {0, 2, 1, 3}, spread),
            strided_copy(convert(dense.v), {2, 0, 1, 3}, spread)};
  REQUIRE_FALSE(in.q.is_contiguous());
  REQUIRE_FALSE(in.v.is_contiguous());

  Mod mask = causal_bottom_right_mod();
  AttentionOptions options;
  options.mask_mod = &mask;
  Tensor ref_lse;
  Tensor expected = standard_attention(in.q, in.k, in.v, options, &ref_lse);
  Tensor out = strided_copy(Tensor::zeros(DType::F32, expected.shape()), {3, 1, 0, 2}, 1);
  Tensor lse = strided_copy(Tensor::zeros(DType::F32, {2, 4, 67}), {2, 1, 0}, 3);
  flash_attention(in.q, in.k, in.v, out, options, &lse);
  const auto [out_tolerance, lse_tolerance] = tolerances(in, {});
  check_same(out, expected, out_tolerance, "out");
  check_same(lse, ref_lse, lse_tolerance, "lse");
}

TEST_CASE("flash attention matches the reference for every built-in mod", "[runtime][cpu][flash][mods]") {
  const int64_t B = 2, H = 4, Hkv = 2;
  auto [S, Skv] = GENERATE(table<int64_t, int64_t>({{65, 65}, {65, 130}, {130, 65}, {7, 200}}));
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16);
  CAPTURE(S, Skv, dtype_name(dtype));
  Inputs in = make_inputs(B, H, Hkv, S, Skv, 64, 64, dtype, 31);

  std::vector<int32_t> prefix{5, 70};
  std::vector<int32_t> documents(static_cast<size_t>(B * std::max(S, Skv)));
  for (size_t i = 0; i < documents.size(); ++i) documents[i] = static_cast<int32_t>((i % 200) / 23);
  Tensor doc_ids = Tensor::from_vector(documents, {B, std::max(S, Skv)});
  Tensor bias = uniform_tensor(33, DType::F32, {H, 1, Skv});  // broadcast over b and q_idx

  struct Case {
    const char* name;
    std::optional<Mod> score, mask;
  };
  std::vector<Case> cases;
  cases.push_back({"causal", std::nullopt, causal_mod()});
  cases.push_back({"causal bottom-right", std::nullopt, causal_bottom_right_mod()});
  cases.push_back({"sliding window 20", std::nullopt, sliding_window_mod(20, true)});
  cases.push_back({"two-sided sliding window 9", std::nullopt, sliding_window_mod(9, false)});
  cases.push_back({"prefix LM", std::nullopt, prefix_lm_mod(Tensor::from_vector(prefix))});
  cases.push_back({"document mask", std::nullopt, document_mask_mod(doc_ids)});
  cases.push_back({"alibi", alibi_mod(static_cast<int>(H)), std::nullopt});
  cases.push_back({"additive bias", additive_bias_mod(bias), std::nullopt});
  cases.push_back({"softcap", softcap_mod(0.5f), std::nullopt});
  cases.push_back({"alibi + causal", alibi_mod(static_cast<int>(H)), causal_mod()});
  cases.push_back({"softcap + sliding window", softcap_mod(2.0f), sliding_window_mod(16, true)});
  cases.push_back({"document & causal", std::nullopt, and_masks({document_mask_mod(doc_ids), causal_mod()})});
  cases.push_back({"prefix | window", std::nullopt,
                   or_masks({prefix_lm_mod(Tensor::from_vector(prefix)), sliding_window_mod(4, false)})});
  cases.push_back({"alibi then softcap, bottom-right causal",
                   compose_score_mods({alibi_mod(static_cast<int>(H)), softcap_mod(1.5f)}), causal_bottom_right_mod()});
  cases.push_back({"causal as a score mod", mask_mod_to_score_mod(causal_mod()), std::nullopt});

  // Every mod program backend on the best micro-kernels, and every micro-kernel set with the
  // default backend.
  std::vector<std::pair<CpuBackend, cpu::CpuIsa>> runs{{CpuBackend::Interpreter, supported_isas().front()}};
  if (cpu_jit_available()) runs.emplace_back(CpuBackend::Llvm, supported_isas().front());
  for (cpu::CpuIsa isa : supported_isas()) {
    if (isa != supported_isas().front()) runs.emplace_back(CpuBackend::Auto, isa);
  }
  for (const Case& c : cases) {
    for (auto [backend, isa] : runs) {
      CAPTURE(c.name, backend == CpuBackend::Llvm ? "llvm" : backend == CpuBackend::Auto ? "auto" : "interpreter",
              cpu::cpu_isa_name(isa));
      AttentionOptions options;
      options.score_mod = c.score ? &*c.score : nullptr;
      options.mask_mod = c.mask ? &*c.mask : nullptr;
      FlashOptions flash;
      flash.backend = backend;
      flash.isa = isa;
      check_against_reference(in, options, flash);
    }
  }
}

TEST_CASE("rows whose keys are all masked give zeros and an LSE of -inf", "[runtime][cpu][flash][mods]") {
  // Even rows keep nothing; a score mod sending every key of a row to -inf does the same.
  Mod odd_rows = user_mod("mask_mod odd_rows() = q_idx % 2 == 1 && kv_idx <= q_idx;", "odd_rows");
  Mod drop_rows = user_mod("score_mod drop(n: int) = q_idx < n ? -inf : score;", "drop");
  drop_rows.bind("n", 70);
  const cpu::CpuIsa isa = GENERATE_REF(from_range(supported_isas()));
  const DType dtype = GENERATE(DType::F32, DType::BF16);
  CAPTURE(cpu::cpu_isa_name(isa), dtype_name(dtype));
  Inputs in = make_inputs(1, 2, 2, 133, 90, 32, 32, dtype, 41);
  AttentionOptions options;
  options.mask_mod = &odd_rows;
  options.score_mod = &drop_rows;
  FlashOptions flash;
  flash.isa = isa;
  Tensor lse;
  Tensor out = Tensor::empty(DType::F32, {1, 2, 133, 32});
  flash_attention(in.q, in.k, in.v, out, options, flash, &lse);
  for (int64_t i : {0, 2, 69, 70, 72, 132}) {
    CAPTURE(i);
    CHECK(lse.get_float({0, 1, i}) == -INFINITY);
    for (int64_t d = 0; d < 32; ++d) CHECK(out.get_float({0, 1, i, d}) == 0.0f);
  }
  CHECK(std::isfinite(lse.get_float({0, 1, 71})));
  check_against_reference(in, options, flash);

  SECTION("and keys that do not exist: kv_len 0 leaves every row empty") {
    Inputs none = make_inputs(1, 1, 1, 5, 0, 16, 16, DType::F32, 43);
    Tensor empty_lse;
    Tensor result = flash_attention(none.q, none.k, none.v, {}, &empty_lse);
    CHECK(empty_lse.get_float({0, 0, 4}) == -INFINITY);
    CHECK(result.get_float({0, 0, 4, 15}) == 0.0f);
  }
}

TEST_CASE("a kept NaN score makes its row NaN on every micro-kernel path and mod backend",
          "[runtime][cpu][flash][nan]") {
  // Row 5 of head 0 is NaN in q (every score NaN); key 70 is NaN in k (rows that keep it have some
  // NaN scores); head 1 has neither. The rows past 64 fall in the second query tile.
  Inputs in = make_inputs(1, 2, 2, 100, 90, 32, 32, DType::F32, 51);
  for (int64_t d = 0; d < 32; ++d) {
    in.q.set_float({0, 0, 5, d}, NAN);
    in.k.set_float({0, 0, 70, d}, NAN);
  }
  const Mod causal = causal_mod();
  const Mod softcap = softcap_mod(5.0f);
  AttentionOptions options;
  options.mask_mod = &causal;
  options.score_mod = &softcap;
  Tensor ref_lse;
  const Tensor ref = standard_attention(in.q, in.k, in.v, options, &ref_lse);
  REQUIRE(std::isnan(ref_lse.get_float({0, 0, 5})));
  REQUIRE(std::isnan(ref_lse.get_float({0, 0, 80})));
  REQUIRE(std::isfinite(ref_lse.get_float({0, 0, 69})));
  REQUIRE(std::isfinite(ref_lse.get_float({0, 1, 5})));
  const cpu::CpuIsa isa = GENERATE_REF(from_range(supported_isas()));
  const CpuBackend backend = GENERATE(CpuBackend::Auto, CpuBackend::Interpreter);
  CAPTURE(cpu::cpu_isa_name(isa), backend == CpuBackend::Auto ? "auto" : "interpreter");
  FlashOptions flash;
  flash.isa = isa;
  flash.backend = backend;
  Tensor out = Tensor::empty(DType::F32, ref.shape());
  Tensor lse;
  flash_attention(in.q, in.k, in.v, out, options, flash, &lse);
  CHECK(attnc_test::nan_mismatches(out, ref) == 0);
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
  CHECK(attnc_test::relative_error_where_defined(out, ref) < 1e-5);

  SECTION("and a NaN scale makes every row NaN") {
    options.scale = NAN;
    options.score_mod = nullptr;
    flash_attention(in.q, in.k, in.v, out, options, flash, &lse);
    for (float x : lse.to_float_vector()) CHECK(std::isnan(x));
  }
}

TEST_CASE("q_offset shifts the mods' q_idx and the tile classes, as in the reference", "[runtime][cpu][flash]") {
  // Query rows placed at positions q_offset.. of a 200-key sequence: the tiles the classifier sees
  // straddle the diagonal at other places than without the offset.
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>(200, 0), {1, 200});
  for (int32_t i = 0; i < 200; ++i) ids.set_int({0, i}, i / 45);
  const std::vector<std::pair<std::string, Mod>> masks = {
      {"causal", causal_mod()},
      {"sliding window 33", sliding_window_mod(33, true)},
      {"document", document_mask_mod(ids)},
      {"prefix_lm", prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{90}))},
  };
  const Mod alibi = alibi_mod(2);
  for (const auto& [name, mask] : masks) {
    for (int32_t offset : {0, 37, 64, 130}) {
      CAPTURE(name, offset);
      const Inputs in = make_inputs(1, 2, 1, 70, 200, 16, 16, DType::F32, 61);
      AttentionOptions options;
      options.mask_mod = &mask;
      options.score_mod = &alibi;
      options.q_offset = offset;
      check_against_reference(in, options);
    }
  }
}

TEST_CASE("flash attention matches the reference on random masks and score mods", "[runtime][cpu][flash][random]") {
  using namespace attnc::ir;
  ir::test::RandomExprOptions expr_options;
  expr_options.params = {
      {Type::Int, {}, DType::I32},     {Type::Float, {}, DType::F32},  {Type::Int, {5}, DType::I32},
      {Type::Float, {4}, DType::BF16}, {Type::Bool, {3}, DType::Bool},
  };
  const uint32_t seed = GENERATE(range(1u, 41u));
  const bool score = seed % 2 == 0;
  CAPTURE(seed, score);
  std::mt19937 rng(seed * 7919u);
  ir::test::RandomExprOptions options = expr_options;
  options.use_score = score;

  ModDef def;
  def.name = score ? "random_score" : "random_mask";
  def.kind = score ? dsl::ModKind::Score : dsl::ModKind::Mask;
  def.params = ir::test::random_param_decls(options);
  def.body = ir::test::random_expr(rng, score ? Type::Float : Type::Bool, 4, options);
  Mod mod = Mod::from_def(def);
  mod.bind("p0", ir::test::random_value(rng, Type::Int).i);
  mod.bind("p1", ir::test::random_value(rng, Type::Float).f);
  std::vector<int32_t> ints;
  for (int n = 0; n < 5; ++n) ints.push_back(std::uniform_int_distribution<int32_t>(-3, 90)(rng));
  mod.bind("p2", Tensor::from_vector(ints));
  std::vector<float> floats;
  for (int n = 0; n < 4; ++n) floats.push_back(ir::test::random_value(rng, Type::Float).f);
  mod.bind("p3", Tensor::from_vector(floats, {4}, DType::BF16));
  mod.bind("p4", Tensor::from_vector(std::vector<int32_t>{1, 0, 1}, {3}, DType::Bool));
  CAPTURE(print_def(mod.def()));

  Inputs in{exact_tensor({1, 4, 70, 32}, seed), exact_tensor({1, 2, 131, 32}, seed + 100),
            uniform_tensor(seed + 200, DType::F32, {1, 2, 131, 24})};
  AttentionOptions attention;
  attention.scale = 0.125f;  // a power of two keeps the scores exact (see exact_tensor)
  (score ? attention.score_mod : attention.mask_mod) = &mod;
  check_against_reference(in, attention);
}

TEST_CASE("EMPTY tiles are skipped and FULL tiles skip the mask", "[runtime][cpu][flash][tiles]") {
  auto run = [](int64_t S, const Mod* mask) {
    Inputs in = make_inputs(1, 1, 1, S, S, 32, 32, DType::F32, 51);
    AttentionOptions options;
    options.mask_mod = mask;
    FlashStats stats;
    FlashOptions flash;
    flash.stats = &stats;
    Tensor out = Tensor::empty(DType::F32, {1, 1, S, 32});
    flash_attention(in.q, in.k, in.v, out, options, flash);
    CHECK(stats.tiles_computed == stats.tiles_full + stats.tiles_partial);
    return stats;
  };
  const int64_t tiles = 1024 / kFlashBlockN;  // 16 x 16 tiles at S = 1024

  FlashStats dense = run(1024, nullptr);
  CHECK(dense.tiles_computed == tiles * tiles);
  CHECK(dense.tiles_skipped == 0);
  CHECK(dense.tiles_partial == 0);

  Mod causal = causal_mod();
  FlashStats triangle = run(1024, &causal);
  CHECK(triangle.tiles_computed == tiles * (tiles + 1) / 2);  // 136 of 256: about half
  CHECK(triangle.tiles_partial == tiles);                     // only the diagonal evaluates the mask
  CHECK(triangle.tiles_skipped == tiles * (tiles - 1) / 2);

  // A sliding window's work grows with the window, not with the sequence.
  Mod narrow = sliding_window_mod(64, true), wide = sliding_window_mod(256, true);
  FlashStats narrow_1k = run(1024, &narrow), narrow_2k = run(2048, &narrow), wide_1k = run(1024, &wide);
  CHECK(narrow_1k.tiles_computed == 2 * tiles - 1);  // the diagonal and the tile before it
  CHECK(narrow_2k.tiles_computed == 2 * (2 * tiles) - 1);
  CHECK(wide_1k.tiles_computed == 5 * tiles - (4 + 3 + 2 + 1));  // 5 per query tile, fewer in the first 4
  CHECK(wide_1k.tiles_computed < dense.tiles_computed / 3);
}

TEST_CASE("flash attention gives bit-identical results for any thread count", "[runtime][cpu][flash]") {
  Inputs in = make_inputs(2, 3, 3, 150, 150, 64, 64, DType::F32, 61);
  Mod causal = causal_mod();
  AttentionOptions options;
  options.mask_mod = &causal;
  Tensor one = Tensor::empty(DType::F32, {2, 3, 150, 64}), all = Tensor::empty(DType::F32, {2, 3, 150, 64});
  FlashOptions serial;
  serial.num_threads = 1;
  flash_attention(in.q, in.k, in.v, one, options, serial);
  flash_attention(in.q, in.k, in.v, all, options, FlashOptions{});
  CHECK(std::memcmp(one.data(), all.data(), static_cast<size_t>(one.numel()) * sizeof(float)) == 0);
}

TEST_CASE("flash attention refuses what standard_attention refuses, with the same messages",
          "[runtime][cpu][flash][errors]") {
  Tensor q = uniform_tensor(71, DType::F32, {2, 4, 3, 8}), k = uniform_tensor(72, DType::F32, {2, 2, 5, 8}),
         v = uniform_tensor(73, DType::F32, {2, 2, 5, 6});
  Tensor out = Tensor::zeros(DType::F32, {2, 4, 3, 6});
  Mod causal = causal_mod();
  Mod window = user_mod("mask_mod w(window: int) = q_idx - kv_idx < window;", "w");
  AttentionOptions none, swapped, unbound;
  swapped.score_mod = &causal;
  unbound.mask_mod = &window;
  Tensor gpu = Tensor::from_data(k.data(), DType::F32, k.shape(), {}, Device::Cuda);
  Tensor bad_out = Tensor::zeros(DType::F32, {2, 4, 3, 8});
  Tensor bad_lse = Tensor::zeros(DType::F32, {2, 4});

  struct Case {
    const char* name;
    Tensor q, k, v, out;
    const AttentionOptions* options;
    Tensor* lse;
  };
  std::vector<Case> cases{
      {"rank", uniform_tensor(1, DType::F32, {4, 3, 8}), k, v, out, &none, nullptr},
      {"batch", q, uniform_tensor(1, DType::F32, {1, 2, 5, 8}), v, out, &none, nullptr},
      {"head dim", q, uniform_tensor(1, DType::F32, {2, 2, 5, 7}), v, out, &none, nullptr},
      {"heads", q, uniform_tensor(1, DType::F32, {2, 3, 5, 8}), uniform_tensor(1, DType::F32, {2, 3, 5, 6}), out, &none,
       nullptr},
      {"device", q, gpu, v, out, &none, nullptr},
      {"dtype", Tensor::zeros(DType::I32, {2, 4, 3, 8}), k, v, out, &none, nullptr},
      {"out shape", q, k, v, bad_out, &none, nullptr},
      {"lse shape", q, k, v, out, &none, &bad_lse},
      {"mod kind", q, k, v, out, &swapped, nullptr},
  };
  auto message = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const RuntimeError& e) {
      return e.what();
    }
    return "no error";
  };
  for (Case& c : cases) {
    CAPTURE(c.name);
    std::string reference = message([&] { standard_attention(c.q, c.k, c.v, c.out, *c.options, c.lse); });
    std::string flash = message([&] { flash_attention(c.q, c.k, c.v, c.out, *c.options, c.lse); });
    REQUIRE(reference.starts_with("standard_attention: "));
    std::string expected = reference;
    for (size_t at; (at = expected.find("standard_attention")) != std::string::npos;) {
      expected.replace(at, std::strlen("standard_attention"), "flash_attention");
    }
    CHECK(flash == expected);
  }
  CHECK_THROWS_WITH(flash_attention(q, k, v, out, unbound), Catch::Contains("mod 'w'") && Catch::Contains("window"));
}

TEST_CASE("out-of-range mod indices are reported like the reference reports them", "[runtime][cpu][flash][errors]") {
  Mod bias = user_mod("score_mod column_bias(t: float[N]) = score + t[kv_idx];", "column_bias");
  bias.bind("t", Tensor::from_vector(std::vector<float>{0.5f, -1.0f, 2.0f}));
  Inputs in = make_inputs(1, 1, 1, 2, 5, 4, 4, DType::F32, 81);
  AttentionOptions options;
  options.score_mod = &bias;
  check_against_reference(in, options);  // clamped without bounds checking

  options.check_bounds = true;
  CHECK_THROWS_WITH(flash_attention(in.q, in.k, in.v, options),
                    Catch::StartsWith("flash_attention: mod 'column_bias': index 3 is out of range for dimension 0 "
                                      "of parameter 't' (extent 3) at (b=0, h=0, q_idx=0, kv_idx=3)"));

  Mod mask = user_mod("mask_mod row_flag(t: bool[N]) = t[q_idx];", "row_flag");
  mask.bind("t", Tensor::from_vector(std::vector<int32_t>{1}, {}, DType::Bool));
  AttentionOptions mask_options;
  mask_options.mask_mod = &mask;
  mask_options.check_bounds = true;
  CHECK_THROWS_WITH(flash_attention(in.q, in.k, in.v, mask_options),
                    Catch::Contains("mod 'row_flag'") && Catch::Contains("(b=0, h=0, q_idx=1, kv_idx=0)"));
}

// Timings for docs/cpu-backend.md: run with `test_runtime "[.benchmark]" -s` on an idle machine.
TEST_CASE("flash attention throughput", "[.benchmark][runtime][cpu][flash]") {
  auto median_seconds = [](auto&& call) {
    std::vector<double> times;
    for (int rep = 0; rep < 3; ++rep) {
      auto start = std::chrono::steady_clock::now();
      call();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[1];
  };
  auto time_attention = [&](int64_t S, const Mod* mask) {
    Inputs in = make_inputs(1, 8, 8, S, S, 128, 128, DType::F32, 91);
    Tensor out = Tensor::empty(DType::F32, {1, 8, S, 128});
    AttentionOptions options;
    options.mask_mod = mask;
    if (mask) flash_attention(in.q, in.k, in.v, out, options);  // compile the mod outside the timing
    return median_seconds([&] { flash_attention(in.q, in.k, in.v, out, options); });
  };
  const double flops_4k = 4.0 * 8 * 4096.0 * 4096.0 * 128;
  double dense = time_attention(4096, nullptr);
  Mod causal = causal_mod();
  double causal_time = time_attention(4096, &causal);
  std::vector<float> a(64 * 128, 0.5f), b(128 * 64, 0.25f), c(64 * 64);
  const auto& kernels = cpu::best_micro_kernels();
  double gemm = median_seconds([&] {
    for (int rep = 0; rep < 20000; ++rep) kernels.gemm(64, 64, 128, a.data(), 128, b.data(), 64, c.data(), 64, false);
  });
  WARN("micro-kernels: " << kernels.name << ", gemm 64x64x128 on one core: " << 2.0 * 64 * 64 * 128 * 20000 / gemm / 1e9
                         << " GFLOP/s");
  WARN("dense fp32 B=1 H=8 S=4096 D=128: " << dense << " s, " << flops_4k / dense / 1e9 << " GFLOP/s");
  WARN("causal / non-causal at S=4096: " << causal_time / dense);
  Mod window = sliding_window_mod(1024, true);
  double dense_16k = time_attention(16384, nullptr);
  double window_16k = time_attention(16384, &window);
  WARN("dense S=16384: " << dense_16k << " s; sliding window 1024: " << window_16k << " s; ratio "
                         << window_16k / dense_16k);
}

TEST_CASE("flash attention with dropout drops what the fp64 reference drops", "[runtime][cpu][flash][dropout]") {
  // Odd lengths, GQA 4:2, a causal sliding window (so masked elements, whose P is 0, meet dropout),
  // a query offset, and fp32 products (bf16 inputs would round P before P V).
  const Tensor q = normal_tensor(31, DType::F32, {2, 4, 77, 32}), k = normal_tensor(32, DType::F32, {2, 2, 133, 32});
  const Tensor v = normal_tensor(33, DType::F32, {2, 2, 133, 32});
  const Mod window = sliding_window_mod(40, true);
  AttentionOptions options;
  options.mask_mod = &window;
  options.q_offset = 50;
  for (float rate : {0.1f, 0.5f}) {
    CAPTURE(rate);
    const Dropout dropout{rate, 1234};
    Tensor want = Tensor::empty(DType::F32, {2, 4, 77, 32}), want_lse;
    standard_attention_dropout(q, k, v, want, options, dropout, &want_lse);
    FlashOptions flash;
    flash.dropout = dropout;
    Tensor got = Tensor::empty(DType::F32, {2, 4, 77, 32}), got_lse;
    flash_attention(q, k, v, got, options, flash, &got_lse);
    CHECK(attnc_test::relative_error(got, want) < 1e-5);
    CHECK(attnc_test::lse_mismatches(got_lse, want_lse) == 0);
    // Another seed drops other elements: the outputs differ.
    flash.dropout.seed = 1235;
    Tensor other = Tensor::empty(DType::F32, {2, 4, 77, 32});
    flash_attention(q, k, v, other, options, flash);
    CHECK(attnc_test::relative_error(other, want) > 1e-2);
  }
  FlashOptions bad;
  bad.dropout.rate = 1.0f;
  Tensor out = Tensor::empty(DType::F32, {2, 4, 77, 32});
  CHECK_THROWS_WITH(flash_attention(q, k, v, out, options, bad), Catch::Contains("flash_attention:"));
}
