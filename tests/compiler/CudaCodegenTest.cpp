// The CUDA code generator's text: golden files for the built-in mods and compositions, determinism
// (signature-equal mods give byte-identical text), the parameter layout, and that no user-chosen
// name can reach the code. Set ATTNC_UPDATE_GOLDEN=1 to rewrite tests/golden/*.cuh after an
// intended change, and review the diff. Whether the text means what the interpreter computes is
// tested in tests/runtime/kernels/GeneratedModSemanticsTest.cpp; that it compiles, in the
// families' tests (tests/runtime/families/).

#include "compiler/CudaCodegen.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Signature.h"
#include "dsl/Errors.h"
#include "tests/support/TestPaths.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

const char* kMods = R"(
mask_mod causal = kv_idx <= q_idx;
mask_mod sliding_window(window: int) = kv_idx <= q_idx && q_idx - kv_idx < window;
score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);
mask_mod document(ids: int[B, S]) = ids[b, q_idx] == ids[b, kv_idx];
score_mod softcap(cap: float) = cap * tanh(score / cap);
mask_mod prefix_lm(prefix: int[B]) = kv_idx < prefix[b] || kv_idx <= q_idx;
score_mod softcap_alibi(cap: float, slopes: float[H]) = softcap(alibi(score, slopes), cap);
mask_mod document_causal(ids: int[B, S]) = document(ids) && causal;
mask_mod dropped(keep: bool[N]) = keep[kv_idx];
score_mod relative_bias(table: float[NH, R]) =
    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
    score + table[h, d];
)";

const Module& mods() {
  static const Module module = load_module_text("golden.attn", kMods);
  return module;
}

ModDef optimized(const std::string& name) {
  const ModDef* def = mods().find(name);
  REQUIRE(def != nullptr);
  return optimize(mods(), *def);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Compares `text` with tests/golden/NAME, or rewrites the file when ATTNC_UPDATE_GOLDEN=1.
void check_golden(const std::string& name, const std::string& text) {
  const std::filesystem::path path = std::filesystem::path(attnc::test::source_dir()) / "tests" / "golden" / name;
  const char* update = std::getenv("ATTNC_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    WARN("rewrote " << path.string());
    return;
  }
  INFO("golden file " << path.string() << " (ATTNC_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(std::filesystem::exists(path));
  CHECK(read_file(path) == text);
}

}  // namespace

TEST_CASE("Generated CUDA for built-in mods and compositions matches the golden files", "[cudagen][golden]") {
  struct Case {
    const char* golden;
    const char* score;
    const char* mask;
    std::vector<DType> score_storage, mask_storage;
    bool check_bounds;
  };
  auto [golden, score_name, mask_name, score_storage, mask_storage, check_bounds] =
      GENERATE(table<const char*, const char*, const char*, std::vector<DType>, std::vector<DType>, bool>({
          {"no_mods.cuh", "", "", {}, {}, false},
          {"causal.cuh", "", "causal", {}, {}, false},
          {"sliding_window.cuh", "", "sliding_window", {}, {}, false},
          {"alibi.cuh", "alibi", "", {DType::F32}, {}, false},
          {"document.cuh", "", "document", {}, {DType::I64}, false},
          {"softcap_causal.cuh", "softcap", "causal", {}, {}, false},
          {"softcap_alibi_document_causal.cuh",
           "softcap_alibi",
           "document_causal",
           {DType::F32, DType::BF16},
           {DType::I32},
           false},
          {"prefix_lm_checked.cuh", "", "prefix_lm", {}, {DType::I32}, true},
          {"relative_bias_dropped_checked.cuh", "relative_bias", "dropped", {DType::F16}, {DType::U8}, true},
      }));
  CAPTURE(golden, score_name, mask_name, check_bounds);
  std::optional<ModDef> score, mask;
  if (*score_name) score = optimized(score_name);
  if (*mask_name) mask = optimized(mask_name);
  CudaCodegenOptions options;
  options.check_bounds = check_bounds;
  CudaModSource source =
      generate_cuda_mods(score ? &*score : nullptr, score_storage, mask ? &*mask : nullptr, mask_storage, options);
  check_golden(golden, source.text);
  CHECK(source.has_score == score.has_value());
  CHECK(source.has_mask == mask.has_value());
  // The same IR again gives the same bytes.
  CudaModSource again =
      generate_cuda_mods(score ? &*score : nullptr, score_storage, mask ? &*mask : nullptr, mask_storage, options);
  CHECK(again.text == source.text);
}

TEST_CASE("Mods with equal signatures generate byte-identical CUDA", "[cudagen]") {
  // Different names, formatting, operand order, mirrored comparisons and lets: one signature.
  const Module variants = load_module_text("variants.attn", R"(
mask_mod first(window: int) = kv_idx <= q_idx && q_idx - kv_idx < window;
mask_mod second(w: int) =
  let distance = q_idx - kv_idx;
  distance < w   &&   q_idx >= kv_idx;   # mirrored and reordered
score_mod third(cap: float, t: float[H]) = cap * tanh((score - t[h]) / cap);
score_mod fourth(limit: float, offsets: float[Heads]) = tanh((score - offsets[h]) / limit) * limit;
)");
  auto opt = [&](const char* name) { return optimize(variants, *variants.find(name)); };
  ModDef a = opt("first"), b = opt("second"), c = opt("third"), d = opt("fourth");
  REQUIRE(compute_signature(a) == compute_signature(b));
  REQUIRE(compute_signature(c) == compute_signature(d));
  std::vector<DType> storage = {DType::F32, DType::BF16};
  CudaModSource ca = generate_cuda_mods(&c, storage, &a, {});
  CudaModSource db = generate_cuda_mods(&d, storage, &b, {});
  CHECK(ca.text == db.text);

  SECTION("with names annotated, only the comments differ") {
    CudaCodegenOptions annotate;
    annotate.annotate_names = true;
    std::string x = generate_cuda_mods(&c, storage, &a, {}, annotate).text;
    std::string y = generate_cuda_mods(&d, storage, &b, {}, annotate).text;
    CHECK(x != y);
    CHECK(x.find("'window'") != std::string::npos);
    CHECK(y.find("'w'") != std::string::npos);
    auto strip_comments = [](const std::string& text) {
      std::string out;
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) out += line.substr(0, line.find("//")) + "\n";
      return out;
    };
    CHECK(strip_comments(x) == strip_comments(y));
  }
  SECTION("a different storage type changes the text") {
    std::vector<DType> other = {DType::F32, DType::F16};
    CHECK(generate_cuda_mods(&c, other, &a, {}).text != ca.text);
  }
  SECTION("bounds checking changes the text") {
    CudaCodegenOptions checked;
    checked.check_bounds = true;
    std::string text = generate_cuda_mods(&c, storage, &a, {}, checked).text;
    CHECK(text != ca.text);
    CHECK(text.find("constexpr bool kCheckBounds = true;") != std::string::npos);
    CHECK(text.find("checked_offset") != std::string::npos);
    CHECK(ca.text.find("checked_offset") == std::string::npos);
  }
}

TEST_CASE("ModParams fields follow the score mod's parameters, then the mask mod's, with their layout", "[cudagen]") {
  ModDef score = optimized("softcap_alibi");  // cap: float, slopes: float[H]
  ModDef mask = optimized("sliding_window");  // window: int
  CudaModSource source = generate_cuda_mods(&score, {}, &mask, {});
  REQUIRE(source.fields.size() == 3);
  CHECK(source.fields[0].kind == CudaParamField::Kind::Float);
  CHECK(source.fields[0].offset == 0);
  CHECK(source.fields[1].kind == CudaParamField::Kind::Tensor);
  CHECK(source.fields[1].offset == 8);  // aligned to 8 after a 4-byte float
  CHECK(source.fields[1].rank == 1);
  CHECK(source.fields[1].storage == DType::F32);  // the default for float tensors
  CHECK(source.fields[2].kind == CudaParamField::Kind::Int);
  CHECK(source.fields[2].from_mask);
  CHECK(source.fields[2].param == 0);
  CHECK(source.fields[2].offset == 8 + kCudaTensorParamSize);
  CHECK(source.params_size == 8 + kCudaTensorParamSize + 8);  // padded to the 8-byte alignment
  CHECK(source.params_align == 8);
  CHECK(source.text.find("  float p0;") != std::string::npos);
  CHECK(source.text.find("  attnc_abi::TensorParam p1;") != std::string::npos);
  CHECK(source.text.find("  int32_t p2;") != std::string::npos);
  CHECK(source.text.find("static_assert(sizeof(ModParams) == 160") != std::string::npos);
  CHECK(source.text.find("static_assert(alignof(ModParams) == 8") != std::string::npos);
  // The mask reads its window from p2, not p0.
  CHECK(source.text.find("params.p2") != std::string::npos);

  SECTION("no parameters: an empty struct of size 1") {
    CudaModSource none = generate_cuda_mods(nullptr, {}, nullptr, {});
    CHECK(none.fields.empty());
    CHECK(none.params_size == 1);
    CHECK(none.text.find("return score;") != std::string::npos);
    CHECK(none.text.find("return true;") != std::string::npos);
    CHECK(none.text.find("return 1;") != std::string::npos);  // tile class FULL
  }
}

TEST_CASE("Hostile mod and parameter names never reach the generated code", "[cudagen][security]") {
  const std::string hostile[] = {
      "x\n#include </etc/passwd>\n", "*/ asm(\"trap;\"); /*",     "name\\", "a\r\nb",
      "}; __global__ void evil() {", std::string("nul\0byte", 8),
  };
  ModDef mask = optimized("sliding_window");
  ModDef score = optimized("alibi");
  for (const std::string& name : hostile) {
    CAPTURE(name);
    ModDef m = mask, s = score;
    m.name = name;
    m.params[0].name = name;
    s.name = name + "2";
    s.params[0].name = name;
    s.params[0].dims[0].name = name;
    for (bool annotate : {false, true}) {
      CAPTURE(annotate);
      CudaCodegenOptions options;
      options.annotate_names = annotate;
      std::string text = generate_cuda_mods(&s, {}, &m, {}, options).text;
      // Every line outside a // comment is the same as for ordinary names.
      ModDef plain_m = mask, plain_s = score;
      std::string plain = generate_cuda_mods(&plain_s, {}, &plain_m, {}, CudaCodegenOptions{}).text;
      std::istringstream got(text), want(plain);
      std::string got_line, want_line;
      size_t lines = 0;
      while (std::getline(want, want_line)) {
        REQUIRE(std::getline(got, got_line));
        CHECK(got_line.substr(0, got_line.find("//")) == want_line.substr(0, want_line.find("//")));
        ++lines;
      }
      CHECK_FALSE(std::getline(got, got_line));  // no extra lines
      CHECK(lines > 20);
      CHECK(text.find('\\') == std::string::npos);
      CHECK(text.find('\r') == std::string::npos);
      CHECK(text.find('\0') == std::string::npos);
      CHECK(text.find("*/") == std::string::npos);
      // Annotated, the name may appear, but only inside a comment (the line comparison above).
      if (!annotate) CHECK(text.find("passwd") == std::string::npos);
    }
  }
}

TEST_CASE("Comment sanitising keeps plain text and neutralises everything else", "[cudagen][security]") {
  CHECK(sanitize_cuda_comment("sliding_window") == "sliding_window");
  CHECK(sanitize_cuda_comment("a b-c.d[1, 2]") == "a b-c.d[1, 2]");
  CHECK(sanitize_cuda_comment("a\nb") == "a_b");
  CHECK(sanitize_cuda_comment("end\\") == "end_");
  CHECK(sanitize_cuda_comment("x*/y") == "x*_y");
  CHECK(sanitize_cuda_comment("caf\xc3\xa9") == "caf__");
  CHECK(sanitize_cuda_comment(std::string(200, 'a')).size() == 80);
}

TEST_CASE("Constants are written exactly, edge values included", "[cudagen]") {
  // A score mod returning each constant: the text must hold the exact spelling.
  struct Case {
    float value;
    const char* spelling;
  };
  auto [value, spelling] = GENERATE(table<float, const char*>({
      {1.0f, "1.0f"},
      {0.1f, "0.1f"},
      {-0.0f, "-0.0f"},
      {1e-30f, "1e-30f"},
      {std::numeric_limits<float>::infinity(), "attnc_abi::float_from_bits(0x7f800000u)"},
      {-std::numeric_limits<float>::infinity(), "attnc_abi::float_from_bits(0xff800000u)"},
      {std::numeric_limits<float>::denorm_min(), "attnc_abi::float_from_bits(0x00000001u)"},
      {3.4028235e38f, "3.4028235e+38f"},
  }));
  CAPTURE(value, spelling);
  ModDef def;
  def.name = "constant";
  def.kind = ModKind::Score;
  def.body = make_binary(Op::Add, make_builtin(Builtin::Score), make_float(value));
  std::string text = generate_cuda_mods(&def, {}, nullptr, {}).text;
  CHECK(text.find(std::string("attnc_abi::add_f32(score, ") + spelling + ")") != std::string::npos);
}

TEST_CASE("Integer edge constants and Int64 tile-classifier values are spelled safely", "[cudagen]") {
  ModDef def;
  def.name = "edges";
  def.kind = ModKind::Mask;
  def.body = make_binary(Op::Lt, make_builtin(Builtin::QIdx),
                         make_binary(Op::Sub, make_builtin(Builtin::KvIdx), make_int(INT32_MIN)));
  std::string text = generate_cuda_mods(nullptr, {}, &def, {}).text;
  CHECK(text.find("attnc_abi::sub_i32(p.kv_idx, attnc_abi::kIntMin)") != std::string::npos);
  CHECK(text.find("(p.kv_idx, -2147483648)") == std::string::npos);  // not a valid int literal
  CHECK(text.find("const int64_t t") != std::string::npos);          // the classifier's exact bounds
}

TEST_CASE("Code generation refuses IR it cannot express", "[cudagen]") {
  ModDef mask = optimized("document");
  SECTION("a storage type that cannot hold the elements") {
    std::vector<DType> wrong = {DType::F32};
    CHECK_THROWS_AS(generate_cuda_mods(nullptr, {}, &mask, wrong), InternalError);
  }
  SECTION("a mask mod passed as the score mod") {
    CHECK_THROWS_AS(generate_cuda_mods(&mask, {}, nullptr, {}), InternalError);
  }
  SECTION("calls that were not inlined") {
    ModDef def;
    def.kind = ModKind::Mask;
    def.body = make_mod_call(0, Type::Bool, {});
    CHECK_THROWS_AS(generate_cuda_mods(nullptr, {}, &def, {}), InternalError);
  }
}
