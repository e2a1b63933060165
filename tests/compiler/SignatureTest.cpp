// Signatures: equal for mods that differ only in spelling, different for different meaning, and
// stable across runs and builds (a golden value).

#include "compiler/Signature.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

// The signature of definition `name` of `text` (the last definition when `name` is empty).
Signature signature_of(const std::string& text, const std::string& name = "", std::vector<DType> storage = {}) {
  Module module = load_module_text("signature.attn", text);
  REQUIRE(!module.defs.empty());
  const ModDef* def = name.empty() ? &module.defs.back() : module.find(name);
  REQUIRE(def != nullptr);
  return compute_signature(optimize(module, *def), storage);
}

}  // namespace

TEST_CASE("signatures are equal for mods that differ only in how they are written", "[signature]") {
  auto [what, a, b] = GENERATE(table<std::string, std::string, std::string>({
      {"formatting and comments", "mask_mod causal = q_idx >= kv_idx;",
       "# keep the past\nmask_mod   causal =\n   q_idx>=kv_idx ;  # done"},
      {"definition names", "mask_mod causal = q_idx >= kv_idx;", "mask_mod past_only = q_idx >= kv_idx;"},
      {"parameter names", "mask_mod w(window: int) = q_idx - kv_idx < window;",
       "mask_mod w(size: int) = q_idx - kv_idx < size;"},
      {"let names and lets versus inline text", "mask_mod w(n: int) = let d = q_idx - kv_idx; d < n && d >= 0;",
       "mask_mod w(n: int) = q_idx - kv_idx < n && q_idx - kv_idx >= 0;"},
      {"tensor parameter and extent names", "score_mod a(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);",
       "score_mod a(m: float[NH]) = score - m[h] * abs(q_idx - kv_idx);"},
      {"commutative operand order", "score_mod s(t: float[N]) = score + t[kv_idx] * 2.0;",
       "score_mod s(t: float[N]) = 2.0 * t[kv_idx] + score;"},
      {"integer sums in any association", "mask_mod m(o: int) = q_idx + o + 1 >= kv_idx;",
       "mask_mod m(o: int) = 1 + (o + q_idx) >= kv_idx;"},
      {"boolean chains in any order", "mask_mod m(a: bool, c: bool) = a && q_idx >= kv_idx && c;",
       "mask_mod m(a: bool, c: bool) = c && (kv_idx <= q_idx && a);"},
      {"mirrored comparisons", "mask_mod causal = q_idx >= kv_idx;", "mask_mod causal = kv_idx <= q_idx;"},
      {"a mod calling others versus written inline",
       "mask_mod causal = q_idx >= kv_idx;\n"
       "mask_mod window(w: int) = q_idx - kv_idx < w;\n"
       "mask_mod local(w: int) = causal && window(w);",
       "mask_mod local(n: int) = kv_idx <= q_idx && q_idx - kv_idx < n;"},
      {"a score mod calling another", "score_mod cap(c: float) = c * tanh(score / c);\nscore_mod s = cap(score, 30.0);",
       "score_mod s = 30.0 * tanh(score / 30.0);"},
      {"identities that simplify away", "mask_mod m = q_idx + 0 >= kv_idx * 1 && true;",
       "mask_mod m = q_idx >= kv_idx;"},
  }));
  CAPTURE(what, a, b);
  CHECK(signature_of(a).hex() == signature_of(b).hex());
}

TEST_CASE("signatures differ for mods with different meaning", "[signature]") {
  auto [what, a, b] = GENERATE(table<std::string, std::string, std::string>({
      {"causal versus anti-causal", "mask_mod m = q_idx >= kv_idx;", "mask_mod m = kv_idx >= q_idx;"},
      {"window < versus <=", "mask_mod w(n: int) = q_idx - kv_idx < n;", "mask_mod w(n: int) = q_idx - kv_idx <= n;"},
      {"different constants", "score_mod s = score * 2.0;", "score_mod s = score * 3.0;"},
      {"different integer constants", "mask_mod m = q_idx - kv_idx < 128;", "mask_mod m = q_idx - kv_idx < 256;"},
      {"different tensor rank", "score_mod s(t: float[N]) = score + t[h];",
       "score_mod s(t: float[N, M]) = score + t[h, h];"},
      {"an extra unused parameter", "mask_mod m = q_idx >= kv_idx;", "mask_mod m(w: int) = q_idx >= kv_idx;"},
      {"scalar parameter types", "mask_mod m(w: int) = float(q_idx) < float(w);",
       "mask_mod m(w: float) = float(q_idx) < w;"},
      {"score mod versus mask mod", "mask_mod m = q_idx >= kv_idx;", "score_mod s = float(q_idx >= kv_idx);"},
      {"moving a constant across a comparison (not exact under wrapping)",
       "mask_mod m(o: int) = q_idx + o >= kv_idx + 1;", "mask_mod m(o: int) = q_idx + o - 1 >= kv_idx;"},
      {"float reassociation", "score_mod s(a: float, c: float) = (score + a) + c;",
       "score_mod s(a: float, c: float) = score + (a + c);"},
      {"parameter order", "mask_mod m(a: int, c: int) = q_idx - a < kv_idx + c;",
       "mask_mod m(c: int, a: int) = q_idx - a < kv_idx + c;"},
  }));
  CAPTURE(what, a, b);
  CHECK(signature_of(a).hex() != signature_of(b).hex());
}

TEST_CASE("tensor storage types are part of the signature, extents are not", "[signature]") {
  const std::string text = "score_mod s(t: float[N]) = score + t[kv_idx];";
  const Signature fp32 = signature_of(text, "s", {DType::F32});
  CHECK(signature_of(text, "s", {}) == fp32);  // fp32 is the default for float tensors
  CHECK(signature_of(text, "s", {DType::F16}) != fp32);
  CHECK(signature_of(text, "s", {DType::BF16}) != signature_of(text, "s", {DType::F16}));

  const std::string ints = "mask_mod m(w: int, doc: int[N]) = doc[q_idx] == doc[kv_idx];";
  // The entry for the scalar parameter is ignored.
  CHECK(signature_of(ints, "m", {DType::F32, DType::I32}) == signature_of(ints, "m", {}));
  CHECK(signature_of(ints, "m", {DType::F32, DType::I64}) != signature_of(ints, "m", {}));
}

TEST_CASE("default_storage maps element types to their natural dtype", "[signature]") {
  CHECK(default_storage(Type::Float) == DType::F32);
  CHECK(default_storage(Type::Int) == DType::I32);
  CHECK(default_storage(Type::Bool) == DType::Bool);
}

TEST_CASE("a signature prints as 32 lowercase hex digits of high then low", "[signature]") {
  Signature s{0x0123456789abcdefull, 0xfedcba9876543210ull};
  CHECK(s.hex() == "0123456789abcdeffedcba9876543210");
  CHECK(Signature{0, 1}.hex() == "00000000000000000000000000000001");
  CHECK(Signature{0, 1} < Signature{1, 0});
}

TEST_CASE("the signature of a known mod is stable across runs and builds", "[signature]") {
  // GOLDEN: kernel caches (in memory and on disk) are keyed by this hash. If a change to the printer,
  // the passes, the IR semantics or Signature.cpp moves it, every cached kernel is invalidated: make
  // sure that is intended, bump kSignatureFormat in Signature.cpp if the meaning changed, and update
  // this value. It hashes print_def's canonical text, so a change of the printer's format moves it.
  const Signature s =
      signature_of("mask_mod sliding_window(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;");
  CHECK(s.hex() == "bb8cdcd0b2c528fd614925e10594f03e");
}
