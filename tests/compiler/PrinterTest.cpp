#include "compiler/Printer.h"

#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include <catch2/catch.hpp>

using namespace attnc;
using namespace attnc::ir;

namespace {

Expr q_idx() { return make_builtin(Builtin::QIdx); }
Expr kv_idx() { return make_builtin(Builtin::KvIdx); }

TensorDim named_dim(std::string name, uint32_t first_param, uint32_t first_dim) {
  return TensorDim{std::move(name), -1, first_param, first_dim};
}
TensorDim literal_dim(int64_t size) { return TensorDim{"", size, 0, 0}; }

// mask_mod <name>(<window>: int) = q_idx >= kv_idx && q_idx - kv_idx < <window>;
ModDef sliding_window(std::string name, std::string window) {
  ModDef def;
  def.name = std::move(name);
  def.kind = ModKind::Mask;
  def.params = {ParamDecl{std::move(window), Type::Int, {}}};
  def.body = make_binary(Op::And, make_binary(Op::Ge, q_idx(), kv_idx()),
                         make_binary(Op::Lt, make_binary(Op::Sub, q_idx(), kv_idx()), make_param(0, Type::Int)));
  return def;
}

// mask_mod document(doc: int[B, N]) = doc[b, q_idx] == doc[b, kv_idx];
ModDef document(std::string name, std::string doc, std::string batch, std::string length) {
  ModDef def;
  def.name = std::move(name);
  def.kind = ModKind::Mask;
  def.params = {
      ParamDecl{std::move(doc), Type::Int, {named_dim(std::move(batch), 0, 0), named_dim(std::move(length), 0, 1)}}};
  Expr b = make_builtin(Builtin::Batch);
  def.body = make_binary(Op::Eq, make_load(0, Type::Int, {b, q_idx()}), make_load(0, Type::Int, {b, kv_idx()}));
  return def;
}

// score_mod bias(table: float[NH, 64], w: float) =
//     let d = q_idx - kv_idx;
//     (d >= 0 ? score * w : score + table[h, clamp(d + 32, 0, 63)]) - float(NH);
ModDef bias() {
  ModDef def;
  def.name = "bias";
  def.kind = ModKind::Score;
  def.params = {ParamDecl{"table", Type::Float, {named_dim("NH", 0, 0), literal_dim(64)}},
                ParamDecl{"w", Type::Float, {}}};
  Expr d = make_binary(Op::Sub, q_idx(), kv_idx());
  Expr score = make_builtin(Builtin::Score);
  Expr column =
      make_binary(Op::Min, make_binary(Op::Max, make_binary(Op::Add, d, make_int(32)), make_int(0)), make_int(63));
  Expr chosen =
      make_select(make_binary(Op::Ge, d, make_int(0)), make_binary(Op::Mul, score, make_param(1, Type::Float)),
                  make_binary(Op::Add, score, make_load(0, Type::Float, {make_builtin(Builtin::Head), column})));
  def.body = make_binary(Op::Sub, chosen, make_cast(Type::Float, make_extent(0, 0)));
  return def;
}

}  // namespace

TEST_CASE("print_def writes a mask mod in both styles", "[printer]") {
  ModDef def = sliding_window("sliding_window", "window");
  CHECK(print_def(def) ==
        "mask_mod sliding_window(window: int) -> bool\n"
        "  return (q_idx >= kv_idx) && ((q_idx - kv_idx) < window)\n");
  CHECK(print_def(def, PrintStyle::Canonical) ==
        "mask_mod ($0: int) -> bool\n"
        "  return (q_idx >= kv_idx) && ((q_idx - kv_idx) < $0)\n");
}

TEST_CASE("print_def writes tensor parameters with element type and dimensions", "[printer]") {
  ModDef def = document("document", "doc", "B", "N");
  CHECK(print_def(def) ==
        "mask_mod document(doc: int[B, N]) -> bool\n"
        "  return doc[b, q_idx] == doc[b, kv_idx]\n");
  CHECK(print_def(def, PrintStyle::Canonical) ==
        "mask_mod ($0: int[_, _]) -> bool\n"
        "  return $0[b, q_idx] == $0[b, kv_idx]\n");
}

TEST_CASE("print_def names shared subexpressions once, with extents and literal dims", "[printer]") {
  ModDef def = bias();
  CHECK(print_def(def) ==
        "score_mod bias(table: float[NH, 64], w: float) -> float\n"
        "  t0 = q_idx - kv_idx\n"
        "  return select((t0 >= 0), (score * w), (score + table[h, min(max((t0 + 32), 0), 63)])) - float(NH)\n");
  CHECK(print_def(def, PrintStyle::Canonical) ==
        "score_mod ($0: float[_, 64], $1: float) -> float\n"
        "  t0 = q_idx - kv_idx\n"
        "  return select((t0 >= 0), (score * $1), (score + $0[h, min(max((t0 + 32), 0), 63)])) - float($0.dim0)\n");
}

TEST_CASE("definitions that differ only in names print identically in canonical style", "[printer][canonical]") {
  SECTION("scalar parameter") {
    ModDef a = sliding_window("sliding_window", "window");
    ModDef b = sliding_window("local", "w");
    CHECK(print_def(a, PrintStyle::Canonical) == print_def(b, PrintStyle::Canonical));
    CHECK(print_def(a) != print_def(b));
  }
  SECTION("tensor parameter and extent names") {
    ModDef a = document("document", "doc", "B", "N");
    ModDef b = document("same_doc", "ids", "Batch", "Len");
    std::string canonical = print_def(a, PrintStyle::Canonical);
    CHECK(canonical == print_def(b, PrintStyle::Canonical));
    CHECK(print_def(a) != print_def(b));
    for (const char* name : {"document", "same_doc", "doc", "ids", "Batch", "Len"}) {
      CAPTURE(name);
      CHECK(canonical.find(name) == std::string::npos);
    }
  }
}

TEST_CASE("canonical headers keep element types, ranks and shared extents", "[printer][canonical]") {
  ModDef def;
  def.name = "shared";
  def.kind = ModKind::Mask;
  def.params = {ParamDecl{"a", Type::Int, {named_dim("B", 0, 0), named_dim("N", 0, 1)}},
                ParamDecl{"c", Type::Bool, {named_dim("B", 0, 0)}}, ParamDecl{"s", Type::Float, {}}};
  def.body = make_load(1, Type::Bool, {make_extent(0, 1)});
  CHECK(print_def(def) ==
        "mask_mod shared(a: int[B, N], c: bool[B], s: float) -> bool\n"
        "  return c[N]\n");
  CHECK(print_def(def, PrintStyle::Canonical) ==
        "mask_mod ($0: int[_, _], $1: bool[$0.dim0], $2: float) -> bool\n"
        "  return $1[$0.dim1]\n");

  ModDef other = def;
  other.params[1].elem = Type::Int;
  other.body = make_binary(Op::Eq, make_load(1, Type::Int, {make_extent(0, 1)}), make_int(0));
  CHECK(print_def(other, PrintStyle::Canonical).find("$1: int[$0.dim0]") != std::string::npos);
}

TEST_CASE("a definition without parameters prints empty parentheses", "[printer]") {
  ModDef def;
  def.name = "causal";
  def.kind = ModKind::Mask;
  def.body = make_binary(Op::Ge, q_idx(), kv_idx());
  CHECK(print_def(def) == "mask_mod causal() -> bool\n  return q_idx >= kv_idx\n");
  CHECK(print_def(def, PrintStyle::Canonical) == "mask_mod () -> bool\n  return q_idx >= kv_idx\n");
}

TEST_CASE("print_expr writes temporaries in post-order before the expression", "[printer][temporaries]") {
  Expr sum = make_binary(Op::Add, q_idx(), kv_idx());
  Expr square = make_binary(Op::Mul, sum, sum);
  Expr e = make_binary(Op::Sub, square, square);
  CHECK(print_expr(e) ==
        "t0 = q_idx + kv_idx\n"
        "t1 = t0 * t0\n"
        "t1 - t1");
}

TEST_CASE("shared subexpressions are printed once and leaves are never temporaries", "[printer][temporaries]") {
  Expr d = make_binary(Op::Sub, q_idx(), kv_idx());
  Expr window = make_param(0, Type::Int);
  Expr e = make_binary(Op::And, make_binary(Op::Lt, d, window), make_binary(Op::Gt, d, make_unary(Op::Neg, window)));
  std::string text = print_expr(e);
  CHECK(text ==
        "t0 = q_idx - kv_idx\n"
        "(t0 < $0) && (t0 > (-$0))");
  size_t first = text.find("q_idx - kv_idx");
  CHECK(text.find("q_idx - kv_idx", first + 1) == std::string::npos);
}

TEST_CASE("every node kind has a spelling", "[printer]") {
  ModDef context = document("document", "doc", "B", "N");
  auto [name, expr, canonical, readable] = GENERATE_COPY(table<std::string, Expr, std::string, std::string>({
      {"casts", make_cast(Type::Int64, make_cast(Type::Int, make_cast(Type::Float, make_bool(true)))),
       "int64(int(float(true)))", "int64(int(float(true)))"},
      {"bool cast", make_cast(Type::Bool, make_float(2.0f)), "bool(2.0)", "bool(2.0)"},
      {"calls", make_call(Op::Pow, {make_call(Op::Exp, {make_builtin(Builtin::Score)}), make_float(0.5f)}),
       "pow(exp(score), 0.5)", "pow(exp(score), 0.5)"},
      {"abs of int", make_call(Op::Abs, {make_int(-3)}), "abs(-3)", "abs(-3)"},
      {"negation vs literal", make_binary(Op::Add, make_unary(Op::Neg, make_int(5)), make_int(-5)), "(-5) + -5",
       "(-5) + -5"},
      {"not", make_unary(Op::Not, make_binary(Op::Lt, q_idx(), make_int(3))), "!(q_idx < 3)", "!(q_idx < 3)"},
      {"max and min", make_binary(Op::Max, make_int(1), make_binary(Op::Min, q_idx(), kv_idx())),
       "max(1, min(q_idx, kv_idx))", "max(1, min(q_idx, kv_idx))"},
      {"int64 constants", make_binary(Op::Add, make_int64(std::numeric_limits<int64_t>::min()), make_int64(7)),
       "-9223372036854775808L + 7L", "-9223372036854775808L + 7L"},
      {"bools", make_binary(Op::Or, make_bool(false), make_bool(true)), "false || true", "false || true"},
      {"extent", make_extent(0, 1), "$0.dim1", "N"},
      {"load", make_load(0, Type::Int, {make_builtin(Builtin::Batch), make_int(0)}), "$0[b, 0]", "doc[b, 0]"},
      {"load range",
       make_load_range(Op::Min, 0, Type::Int, {make_cast(Type::Int64, q_idx()), make_int64(0)},
                       {make_int64(-3), make_int64(std::numeric_limits<int64_t>::max())}),
       "range_min($0, [int64(q_idx), 0L], [-3L, 9223372036854775807L])",
       "range_min(doc, [int64(q_idx), 0L], [-3L, 9223372036854775807L])"},
      {"load range max", make_load_range(Op::Max, 0, Type::Float, {make_int64(1)}, {make_int64(2)}),
       "range_max($0, [1L], [2L])", "range_max(doc, [1L], [2L])"},
      {"mod call", make_mod_call(2, Type::Bool, {make_builtin(Builtin::Head), make_tensor_ref(0, Type::Int)}),
       "call#2(h, $0)", "call#2(h, doc)"},
      {"mod call without args", make_mod_call(0, Type::Bool, {}), "call#0()", "call#0()"},
      {"tile builtins", make_binary(Op::Le, make_builtin(Builtin::QTileFirst), make_builtin(Builtin::KvTileLast)),
       "q_tile_first <= kv_tile_last", "q_tile_first <= kv_tile_last"},
  }));
  CAPTURE(name);
  CHECK(print_expr(expr, &context, PrintStyle::Canonical) == canonical);
  CHECK(print_expr(expr, &context, PrintStyle::Readable) == readable);
}

TEST_CASE("readable style without a context falls back to parameter numbers", "[printer]") {
  Expr e = make_binary(Op::Add, make_param(1, Type::Int), make_load(0, Type::Int, {make_extent(0, 0)}));
  CHECK(print_expr(e) == "$1 + $0[$0.dim0]");
  ModDef context = bias();
  // A literal dimension has no name; its extent is spelled through the parameter.
  CHECK(print_expr(make_extent(0, 1), &context) == "table.dim1");
}

TEST_CASE("float constants print exactly and always look like floats", "[printer][constants]") {
  auto [value, expected] = GENERATE(table<float, std::string>({
      {1.0f, "1.0"},
      {0.1f, "0.1"},
      {-0.0f, "-0.0"},
      {2.5f, "2.5"},
      {1e-7f, "1e-07"},
      {16777216.0f, "16777216.0"},
      {1e20f, "1e+20"},
      {3.4028235e38f, "3.4028235e+38"},
      {std::numeric_limits<float>::infinity(), "inf"},
      {-std::numeric_limits<float>::infinity(), "-inf"},
      {std::numeric_limits<float>::quiet_NaN(), "nan"},
  }));
  CAPTURE(expected);
  CHECK(print_expr(make_float(value)) == expected);
}

TEST_CASE("printed float constants read back to the same bits", "[printer][constants]") {
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any_bits;
  int mismatches = 0;
  std::string first_mismatch;
  for (int i = 0; i < 20000; ++i) {
    float value = std::bit_cast<float>(any_bits(rng));
    if (!std::isfinite(value)) continue;
    std::string text = print_expr(make_float(value));
    float back = std::strtof(text.c_str(), nullptr);
    if (std::bit_cast<uint32_t>(back) != std::bit_cast<uint32_t>(value) && mismatches++ == 0) first_mismatch = text;
  }
  CAPTURE(first_mismatch);
  CHECK(mismatches == 0);
}

TEST_CASE("printing is deterministic and independent of node addresses", "[printer][canonical]") {
  ModDef a = bias();
  ModDef b = bias();  // the same structure built again: other objects, other addresses
  REQUIRE(a.body != b.body);
  CHECK(print_def(a, PrintStyle::Canonical) == print_def(b, PrintStyle::Canonical));
  CHECK(print_def(a) == print_def(a));
}

TEST_CASE("deep expressions print without recursion in linear size", "[printer]") {
  Expr x = make_param(0, Type::Int);
  for (int k = 0; k < 10000; ++k) x = make_binary(Op::Add, x, make_int(1));
  std::string text = print_expr(x, nullptr, PrintStyle::Canonical);
  // "$0", then 9999 times "(" ... " + 1)", then the outermost " + 1" without parentheses.
  CHECK(text.size() == 2 + 9999 * 6 + 4);
  CHECK(text.substr(0, 4) == "((((");
  CHECK(text.substr(text.size() - 9) == " + 1) + 1");
}
