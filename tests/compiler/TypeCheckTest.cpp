#include "compiler/TypeCheck.h"

#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "compiler/IR.h"
#include "dsl/Parser.h"

using namespace attnc;
using namespace attnc::ir;

namespace {

struct Checked {
  Module module;
  std::vector<dsl::Diagnostic> diagnostics;

  std::vector<dsl::Diagnostic> errors() const {
    std::vector<dsl::Diagnostic> out;
    for (const auto& d : diagnostics) {
      if (d.severity == dsl::Severity::Error) out.push_back(d);
    }
    return out;
  }
};

Checked check(const std::string& text) {
  auto source = std::make_shared<const dsl::SourceFile>("test.attn", text);
  dsl::DiagnosticEngine diagnostics(source);
  dsl::AstFile file = dsl::parse_file(source, diagnostics);
  Checked out;
  out.module = check_module(file, diagnostics);
  out.diagnostics = diagnostics.diagnostics();
  return out;
}

// The body of the only definition of a file that must check cleanly.
Expr body_of(const std::string& text) {
  Checked c = check(text);
  INFO(dsl::render(c.diagnostics));
  REQUIRE(c.diagnostics.empty());
  REQUIRE(c.module.defs.size() == 1);
  return c.module.defs[0].body;
}

bool is_builtin(const Expr& e, Builtin b) { return e->kind == Kind::Builtin && e->builtin == b; }
bool is_cast_to_float(const Expr& e) { return e->kind == Kind::Cast && e->type == Type::Float; }
bool is_float_const(const Expr& e, float v) {
  return e->kind == Kind::Const && e->type == Type::Float && e->float_value == v;
}

// A source with the expected caret range marked by braces: "mask_mod m = q_idx >= {kv};".
struct Marked {
  std::string text;
  uint32_t column = 0;
  uint32_t length = 0;
};

Marked unmark(const std::string& marked) {
  Marked out;
  size_t open = marked.find('{');
  size_t close = marked.find('}');
  REQUIRE(open != std::string::npos);
  REQUIRE(close != std::string::npos);
  out.text = marked.substr(0, open) + marked.substr(open + 1, close - open - 1) + marked.substr(close + 1);
  out.column = static_cast<uint32_t>(open + 1);
  out.length = static_cast<uint32_t>(close - open - 1);
  return out;
}

const char* const kContractExamples = R"(mask_mod causal = q_idx >= kv_idx;

mask_mod sliding_window(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;

score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);

score_mod softcap(cap: float) = cap * tanh(score / cap);

mask_mod document(doc: int[B, N]) = doc[b, q_idx] == doc[b, kv_idx];

score_mod relative_bias(table: float[NH, R]) =
    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
    score + table[h, d];

mask_mod local_causal(window: int) = causal && sliding_window(window);
)";

}  // namespace

TEST_CASE("the contract's examples check cleanly into typed definitions", "[typecheck]") {
  Checked c = check(kContractExamples);
  INFO(dsl::render(c.diagnostics));
  REQUIRE(c.diagnostics.empty());
  REQUIRE(c.module.defs.size() == 7);
  CHECK(c.module.source != nullptr);
  CHECK(c.module.names() == std::vector<std::string>{"causal", "sliding_window", "alibi", "softcap", "document",
                                                     "relative_bias", "local_causal"});
  for (const ModDef& def : c.module.defs) {
    CAPTURE(def.name);
    CHECK(def.body->type == (def.kind == dsl::ModKind::Score ? Type::Float : Type::Bool));
    CHECK(def.range.size() > 0);
  }
  // The definition's range runs from its keyword to its ';'.
  const ModDef& causal = c.module.defs[0];
  CHECK(c.module.source->slice(causal.range) == "mask_mod causal = q_idx >= kv_idx;");

  SECTION("causal compares the two index built-ins") {
    const Expr& body = causal.body;
    REQUIRE(body->kind == Kind::Binary);
    CHECK(body->op == Op::Ge);
    CHECK(is_builtin(body->operands[0], Builtin::QIdx));
    CHECK(is_builtin(body->operands[1], Builtin::KvIdx));
  }
  SECTION("alibi loads the slope of the head and promotes the int distance") {
    const ModDef& alibi = *c.module.find("alibi");
    REQUIRE(alibi.params.size() == 1);
    CHECK(alibi.params[0].elem == Type::Float);
    REQUIRE(alibi.params[0].dims.size() == 1);
    CHECK(alibi.params[0].dims[0].name == "H");
    CHECK(alibi.params[0].dims[0].size == -1);
    const Expr& body = alibi.body;  // score - slopes[h] * float(abs(q_idx - kv_idx))
    REQUIRE(body->op == Op::Sub);
    CHECK(is_builtin(body->operands[0], Builtin::Score));
    const Expr& product = body->operands[1];
    REQUIRE(product->op == Op::Mul);
    REQUIRE(product->operands[0]->kind == Kind::Load);
    CHECK(product->operands[0]->index == 0);
    CHECK(product->operands[0]->type == Type::Float);
    CHECK(is_builtin(product->operands[0]->operands[0], Builtin::Head));
    const Expr& distance = product->operands[1];
    REQUIRE(is_cast_to_float(distance));
    CHECK(distance->operands[0]->kind == Kind::Call);
    CHECK(distance->operands[0]->op == Op::Abs);
    CHECK(distance->operands[0]->type == Type::Int);
  }
  SECTION("relative_bias uses its extent R and its let") {
    const ModDef& def = *c.module.find("relative_bias");
    REQUIRE(def.params[0].dims.size() == 2);
    CHECK(def.params[0].dims[1].name == "R");
    CHECK(def.params[0].dims[1].first_param == 0);
    CHECK(def.params[0].dims[1].first_dim == 1);
    const Expr& body = def.body;  // score + table[h, d]
    REQUIRE(body->op == Op::Add);
    const Expr& load = body->operands[1];
    REQUIRE(load->kind == Kind::Load);
    REQUIRE(load->operands.size() == 2);
    const Expr& d = load->operands[1];  // min(max(q_idx - kv_idx + R / 2, 0), R - 1)
    REQUIRE(d->op == Op::Min);
    CHECK(d->type == Type::Int);
    REQUIRE(d->operands[0]->op == Op::Max);
    const Expr& r_minus_1 = d->operands[1];
    REQUIRE(r_minus_1->op == Op::Sub);
    CHECK(r_minus_1->operands[0]->kind == Kind::Extent);
    CHECK(r_minus_1->operands[0]->index == 0);
    CHECK(r_minus_1->operands[0]->dim == 1);
  }
  SECTION("local_causal calls the two earlier mask mods") {
    const Expr& body = c.module.find("local_causal")->body;
    REQUIRE(body->op == Op::And);
    const Expr& causal_call = body->operands[0];
    REQUIRE(causal_call->kind == Kind::ModCall);
    CHECK(causal_call->index == 0);
    CHECK(causal_call->type == Type::Bool);
    CHECK(causal_call->operands.empty());
    const Expr& window_call = body->operands[1];
    REQUIRE(window_call->kind == Kind::ModCall);
    CHECK(window_call->index == 1);
    REQUIRE(window_call->operands.size() == 1);
    CHECK(window_call->operands[0]->kind == Kind::Param);
    CHECK(window_call->operands[0]->index == 0);
    CHECK(window_call->operands[0]->type == Type::Int);
  }
}

TEST_CASE("every built-in name is an IR built-in of its type", "[typecheck]") {
  auto [name, builtin, type] = GENERATE(table<std::string, Builtin, Type>({
      {"score", Builtin::Score, Type::Float},
      {"b", Builtin::Batch, Type::Int},
      {"h", Builtin::Head, Type::Int},
      {"q_idx", Builtin::QIdx, Type::Int},
      {"kv_idx", Builtin::KvIdx, Type::Int},
      {"q_len", Builtin::QLen, Type::Int},
      {"kv_len", Builtin::KvLen, Type::Int},
      {"num_heads", Builtin::NumHeads, Type::Int},
      {"num_kv_heads", Builtin::NumKvHeads, Type::Int},
  }));
  CAPTURE(name);
  Expr body = body_of("score_mod s = " + name + ";");
  if (type == Type::Int) {
    REQUIRE(is_cast_to_float(body));  // an int body is promoted
    body = body->operands[0];
  }
  CHECK(is_builtin(body, builtin));
  CHECK(body->type == type);
}

TEST_CASE("scalar parameters become Param nodes of their declared type", "[typecheck]") {
  Checked c = check("mask_mod m(a: int, f: float, flag: bool) = flag && f > 0.5 && a < 3;");
  INFO(dsl::render(c.diagnostics));
  REQUIRE(c.diagnostics.empty());
  const ModDef& def = c.module.defs[0];
  REQUIRE(def.params.size() == 3);
  CHECK(def.params[0].elem == Type::Int);
  CHECK(def.params[1].elem == Type::Float);
  CHECK(def.params[2].elem == Type::Bool);
  CHECK_FALSE(def.params[0].is_tensor());
  // ((flag && f > 0.5) && a < 3)
  const Expr& outer = def.body;
  REQUIRE(outer->op == Op::And);
  const Expr& inner = outer->operands[0];
  REQUIRE(inner->op == Op::And);
  CHECK(inner->operands[0]->kind == Kind::Param);
  CHECK(inner->operands[0]->index == 2);
  CHECK(inner->operands[0]->type == Type::Bool);
  CHECK(inner->operands[1]->operands[0]->kind == Kind::Param);
  CHECK(inner->operands[1]->operands[0]->index == 1);
  CHECK(inner->operands[1]->operands[0]->type == Type::Float);
  CHECK(outer->operands[1]->operands[0]->index == 0);
  CHECK(outer->operands[1]->operands[0]->type == Type::Int);
}

TEST_CASE("extents bind ints and a repeated extent name stands for its first use", "[typecheck]") {
  Checked c = check("score_mod s(a: float[N, 4], c: int[M, N]) = score + float(N + M);");
  INFO(dsl::render(c.diagnostics));
  REQUIRE(c.diagnostics.empty());
  const ModDef& def = c.module.defs[0];
  REQUIRE(def.params.size() == 2);
  const auto& a = def.params[0].dims;
  const auto& cd = def.params[1].dims;
  REQUIRE(a.size() == 2);
  REQUIRE(cd.size() == 2);
  CHECK(a[0].name == "N");
  CHECK(a[0].size == -1);
  CHECK(a[1].name.empty());
  CHECK(a[1].size == 4);
  CHECK(cd[0].name == "M");
  CHECK(cd[0].first_param == 1);
  CHECK(cd[0].first_dim == 0);
  CHECK(cd[1].name == "N");
  CHECK(cd[1].first_param == 0);  // the first N: a's dimension 0
  CHECK(cd[1].first_dim == 0);
  // score + float(N + M)
  const Expr& sum = def.body->operands[1]->operands[0];
  REQUIRE(sum->op == Op::Add);
  CHECK(sum->operands[0]->kind == Kind::Extent);
  CHECK(sum->operands[0]->index == 0);
  CHECK(sum->operands[0]->dim == 0);
  CHECK(sum->operands[1]->kind == Kind::Extent);
  CHECK(sum->operands[1]->index == 1);
  CHECK(sum->operands[1]->dim == 0);
}

TEST_CASE("a let used twice is one shared node and later lets see earlier ones", "[typecheck]") {
  Expr body = body_of("score_mod s = let d = q_idx - kv_idx; let e = d * d; score + float(e + d);");
  // score + Cast(e + d) where e = d * d
  const Expr& sum = body->operands[1]->operands[0];
  REQUIRE(sum->op == Op::Add);
  const Expr& e = sum->operands[0];
  const Expr& d = sum->operands[1];
  REQUIRE(e->op == Op::Mul);
  CHECK(d->op == Op::Sub);
  CHECK(e->operands[0].get() == d.get());
  CHECK(e->operands[1].get() == d.get());
}

TEST_CASE("ints are promoted to float with Cast nodes where they meet floats", "[typecheck]") {
  SECTION("arithmetic") {
    Expr body = body_of("score_mod s = score + 1;");
    REQUIRE(body->op == Op::Add);
    CHECK(body->type == Type::Float);
    CHECK(is_builtin(body->operands[0], Builtin::Score));
    REQUIRE(is_cast_to_float(body->operands[1]));
    CHECK(is_const_int(body->operands[1]->operands[0], 1));
  }
  SECTION("comparison") {
    Expr body = body_of("mask_mod m = q_idx < 1.5;");
    REQUIRE(body->op == Op::Lt);
    REQUIRE(is_cast_to_float(body->operands[0]));
    CHECK(is_builtin(body->operands[0]->operands[0], Builtin::QIdx));
    CHECK(is_float_const(body->operands[1], 1.5f));
  }
  SECTION("int arithmetic stays int") {
    Expr body = body_of("mask_mod m = q_idx - kv_idx < 4;");
    REQUIRE(body->op == Op::Lt);
    CHECK(body->operands[0]->type == Type::Int);
    CHECK(is_const_int(body->operands[1], 4));
  }
  SECTION("min and max") {
    Expr body = body_of("score_mod s = min(q_idx, 2.0) + max(score, 1);");
    REQUIRE(body->op == Op::Add);
    const Expr& mn = body->operands[0];
    REQUIRE(mn->kind == Kind::Binary);
    CHECK(mn->op == Op::Min);
    CHECK(mn->type == Type::Float);
    CHECK(is_cast_to_float(mn->operands[0]));
    const Expr& mx = body->operands[1];
    CHECK(mx->op == Op::Max);
    CHECK(is_cast_to_float(mx->operands[1]));
  }
  SECTION("clamp lowers to min(max(x, lo), hi) on the promoted type") {
    Expr body = body_of("score_mod s = clamp(score, 0, 1.0);");
    REQUIRE(body->op == Op::Min);
    CHECK(is_float_const(body->operands[1], 1.0f));
    const Expr& inner = body->operands[0];
    REQUIRE(inner->op == Op::Max);
    CHECK(is_builtin(inner->operands[0], Builtin::Score));
    REQUIRE(is_cast_to_float(inner->operands[1]));
    CHECK(is_const_int(inner->operands[1]->operands[0], 0));
  }
  SECTION("clamp of ints stays int") {
    Expr body = body_of("mask_mod m = clamp(q_idx, 0, 7) == 3;");
    const Expr& clamp = body->operands[0];
    REQUIRE(clamp->op == Op::Min);
    CHECK(clamp->type == Type::Int);
    CHECK(is_const_int(clamp->operands[1], 7));
    CHECK(is_const_int(clamp->operands[0]->operands[1], 0));
  }
  SECTION("where and ?: become Select with promoted arms") {
    for (const char* text : {"score_mod s = where(q_idx > 0, 1, score);", "score_mod s = q_idx > 0 ? 1 : score;"}) {
      CAPTURE(text);
      Expr body = body_of(text);
      REQUIRE(body->kind == Kind::Select);
      CHECK(body->type == Type::Float);
      CHECK(body->operands[0]->op == Op::Gt);
      REQUIRE(is_cast_to_float(body->operands[1]));
      CHECK(is_const_int(body->operands[1]->operands[0], 1));
      CHECK(is_builtin(body->operands[2], Builtin::Score));
    }
  }
  SECTION("bool arms of a select stay bool") {
    Expr body = body_of("mask_mod m = q_idx > 0 ? true : kv_idx > 0;");
    REQUIRE(body->kind == Kind::Select);
    CHECK(body->type == Type::Bool);
  }
  SECTION("an int score mod body is promoted") {
    Expr body = body_of("score_mod s = q_idx;");
    REQUIRE(is_cast_to_float(body));
    CHECK(is_builtin(body->operands[0], Builtin::QIdx));
  }
  SECTION("float functions take promoted ints") {
    Expr body = body_of("score_mod s = exp(q_idx) + pow(2, score);");
    const Expr& e = body->operands[0];
    REQUIRE(e->kind == Kind::Call);
    CHECK(e->op == Op::Exp);
    CHECK(is_cast_to_float(e->operands[0]));
    const Expr& p = body->operands[1];
    REQUIRE(p->op == Op::Pow);
    CHECK(is_cast_to_float(p->operands[0]));
    CHECK(is_builtin(p->operands[1], Builtin::Score));
  }
  SECTION("== promotes numbers and compares two bools as they are") {
    Expr body = body_of("mask_mod m = (q_idx == 1.0) != (kv_idx > 2);");
    REQUIRE(body->op == Op::Ne);
    CHECK(body->operands[0]->operands[1]->type == Type::Float);
    CHECK(is_cast_to_float(body->operands[0]->operands[0]));
  }
}

TEST_CASE("each math function maps to its IR op with a float result", "[typecheck]") {
  auto [name, op] = GENERATE(table<std::string, Op>({
      {"exp", Op::Exp},
      {"exp2", Op::Exp2},
      {"log", Op::Log},
      {"log2", Op::Log2},
      {"sqrt", Op::Sqrt},
      {"rsqrt", Op::Rsqrt},
      {"tanh", Op::Tanh},
      {"sigmoid", Op::Sigmoid},
      {"sin", Op::Sin},
      {"cos", Op::Cos},
      {"floor", Op::Floor},
      {"ceil", Op::Ceil},
      {"round", Op::Round},
  }));
  CAPTURE(name);
  Expr body = body_of("score_mod s = " + name + "(kv_idx);");
  REQUIRE(body->kind == Kind::Call);
  CHECK(body->op == op);
  CHECK(body->type == Type::Float);
  REQUIRE(is_cast_to_float(body->operands[0]));
  CHECK(is_builtin(body->operands[0]->operands[0], Builtin::KvIdx));
}

TEST_CASE("abs keeps ints and float(x) / int(x) convert explicitly", "[typecheck]") {
  SECTION("abs of an int is an int") {
    Expr body = body_of("mask_mod m = abs(q_idx - kv_idx) < 3;");
    const Expr& a = body->operands[0];
    REQUIRE(a->op == Op::Abs);
    CHECK(a->type == Type::Int);
  }
  SECTION("float of a bool") {
    Expr body = body_of("score_mod s = float(q_idx > kv_idx);");
    REQUIRE(is_cast_to_float(body));
    CHECK(body->operands[0]->type == Type::Bool);
  }
  SECTION("int of a float") {
    Expr body = body_of("mask_mod m = int(1.5) > 0;");
    const Expr& cast = body->operands[0];
    REQUIRE(cast->kind == Kind::Cast);
    CHECK(cast->type == Type::Int);
    CHECK(is_float_const(cast->operands[0], 1.5f));
  }
  SECTION("float of a float is the value itself") {
    Expr body = body_of("score_mod s = float(score);");
    CHECK(is_builtin(body, Builtin::Score));
  }
  SECTION("% on floats is allowed") {
    Expr body = body_of("score_mod s = score % 2.0;");
    CHECK(body->op == Op::Mod);
    CHECK(body->type == Type::Float);
  }
  SECTION("a float divided by a literal zero is allowed") {
    Expr body = body_of("score_mod s = score / 0;");
    CHECK(body->op == Op::Div);
    CHECK(is_cast_to_float(body->operands[1]));
  }
}

TEST_CASE("literals at the edges of their ranges", "[typecheck]") {
  SECTION("-2147483648 is the smallest int") {
    Expr body = body_of("mask_mod m = q_idx > -2147483648;");
    CHECK(is_const_int(body->operands[1], std::numeric_limits<int32_t>::min()));
  }
  SECTION("-(2147483648) is the smallest int too") {
    Expr body = body_of("mask_mod m = q_idx > -(2147483648);");
    CHECK(is_const_int(body->operands[1], std::numeric_limits<int32_t>::min()));
  }
  SECTION("2147483647 is the largest int") {
    Expr body = body_of("mask_mod m = q_idx < 2147483647;");
    CHECK(is_const_int(body->operands[1], 2147483647));
  }
  SECTION("-inf is minus infinity") {
    Expr body = body_of("score_mod s = q_idx > 3 ? -inf : score;");
    CHECK(is_float_const(body->operands[1], -std::numeric_limits<float>::infinity()));
  }
  SECTION("inf is plus infinity") {
    Expr body = body_of("score_mod s = min(score, inf);");
    CHECK(is_float_const(body->operands[1], std::numeric_limits<float>::infinity()));
  }
  SECTION("a float literal that rounds to the largest float is accepted") {
    Expr body = body_of("score_mod s = 3.4028235e38;");
    CHECK(is_float_const(body, std::numeric_limits<float>::max()));
  }
}

TEST_CASE("type and name errors are reported at the exact range with the exact message", "[typecheck]") {
  auto [marked, message] = GENERATE(table<std::string, std::string>({
      {"mask_mod m = q_idx >= {kv};", "unknown name 'kv'; did you mean 'kv_idx'?"},
      {"mask_mod m = {zzzzqq} > 0;", "unknown name 'zzzzqq'"},
      {"score_mod s(cap: float) = score + {capp};", "unknown name 'capp'; did you mean 'cap'?"},
      {"score_mod s = {sqrtt}(score);", "unknown name 'sqrtt'; did you mean 'sqrt'?"},
      {"mask_mod m = {score} > 0.0;", "'score' is only available in score mods"},
      {"mask_mod m = {scor} > 0.0;", "unknown name 'scor'"},  // score is no candidate in a mask mod
      {"score_mod s = {scor};", "unknown name 'scor'; did you mean 'score'?"},
      {"score_mod s(t: float[N]) = let u = {t}; score;", "'t' is a tensor; index it as t[...]"},
      {"score_mod s = score + {true};", "'+' needs int or float operands, not bool"},
      {"score_mod s = {(q_idx > 0)} * score;", "'*' needs int or float operands, not bool"},
      {"mask_mod m = {q_idx > 0} < true;", "'<' needs int or float operands, not bool"},
      {"mask_mod m = (q_idx > 0) {==} 1;", "'==' cannot compare bool with int"},
      {"mask_mod m = 1.0 {!=} false;", "'!=' cannot compare float with bool"},
      {"mask_mod m = {q_idx} && true;", "'&&' needs bool operands, not int"},
      {"mask_mod m = true || {1.5};", "'||' needs bool operands, not float"},
      {"mask_mod m = !{q_idx};", "'!' needs a bool operand, not int"},
      {"score_mod s = -{true};", "'-' needs an int or float operand, not bool"},
      {"score_mod s = {q_idx} ? score : 0.0;", "the condition of '?:' must be bool, not int"},
      {"score_mod s = q_idx > 0 {?} true : 1.0;",
       "the branches of '?:' must both be bool or both be numbers, got bool and float"},
      {"score_mod s = where({1}, score, 0.0);", "the condition of 'where' must be bool, not int"},
      {"score_mod s = {where(true, true, 1.0)};",
       "the branches of 'where' must both be bool or both be numbers, got bool and float"},
      {"score_mod s = {q_idx > 0};", "a score mod's body must be float, not bool"},
      {"mask_mod m = {q_idx + 1};", "a mask mod's body must be bool, not int"},
      {"mask_mod m = {score_ish_name_that_is_long};", "unknown name 'score_ish_name_that_is_long'"},
      {"mask_mod m = q_idx > {2147483648};", "integer literal out of range"},
      {"mask_mod m = q_idx > -{2147483649};", "integer literal out of range"},
      {"mask_mod m = q_idx > {99999999999999999999999};", "integer literal out of range"},
      {"score_mod s = score * {1e39};", "float literal out of range"},
      {"score_mod s = score * -{3.5e38};", "float literal out of range"},
      {"mask_mod m = q_idx / {0} > 1;", "division by literal zero"},
      {"mask_mod m = q_idx % {0} > 1;", "division by literal zero"},
      {"mask_mod m = q_idx / {-0} > 1;", "division by literal zero"},
      {"score_mod s = score * {clamp(score, 1.0)};", "'clamp' takes 3 arguments, got 2"},
      {"score_mod s = {exp(score, score)};", "'exp' takes 1 argument, got 2"},
      {"score_mod s = {pow(score)};", "'pow' takes 2 arguments, got 1"},
      {"score_mod s = exp({q_idx > 0});", "'exp' needs int or float arguments, not bool"},
      {"score_mod s = max(score, {true});", "'max' needs int or float arguments, not bool"},
      {"score_mod s = {exp};", "'exp' is a function; call it as exp(...)"},
      {"score_mod s = {q_idx}(1);", "'q_idx' is not a function"},
      {"score_mod s(t: float[N]) = score + {t};", "'t' is a tensor; index it as t[...]"},
      {"score_mod s(t: float[N]) = score + {t[h, h]};", "tensor 't' takes 1 index, got 2"},
      {"score_mod s(t: float[N, M]) = score + {t[h]};", "tensor 't' takes 2 indices, got 1"},
      {"score_mod s(t: float[N]) = score + t[{1.5}];", "a tensor index must be int, not float"},
      {"score_mod s(t: float[N]) = score + t[{q_idx > 0}];", "a tensor index must be int, not bool"},
      {"score_mod s(c: float) = score + {c}[0];", "'c' is not a tensor and cannot be indexed"},
      {"score_mod s = score + {h}[0];", "'h' is not a tensor and cannot be indexed"},
      {"score_mod s = score + {(h + 1)}[0];", "only tensor parameters can be indexed"},
      {"score_mod s({q_idx}: int) = score;", "'q_idx' shadows a built-in name"},
      {"mask_mod m({score}: int) = true;", "'score' shadows a built-in name"},
      {"score_mod s({exp}: float) = score;", "'exp' shadows a function"},
      {"score_mod s({where}: float) = score;", "'where' shadows a function"},
      {"score_mod s(a: float, {a}: int) = score;", "'a' is already declared as a parameter"},
      {"score_mod s(t: float[{b}]) = score;", "'b' shadows a built-in name"},
      {"score_mod s(n: int, t: float[{n}]) = score;", "'n' is already declared as a parameter"},
      {"score_mod s(t: float[N], {N}: int) = score;", "'N' is already declared as an extent"},
      {"score_mod s = let {h} = 1; score;", "'h' shadows a built-in name"},
      {"score_mod s = let {tanh} = 1; score;", "'tanh' shadows a function"},
      {"score_mod s = let x = 1; let {x} = 2; score;", "'x' is already declared as a let"},
      {"score_mod s(x: int) = let {x} = 2; score;", "'x' is already declared as a parameter"},
      {"score_mod s(t: float[{0}]) = score;", "a tensor extent must be at least 1"},
      {"score_mod s(t: float[{4294967296}]) = score;", "tensor extent out of range"},
      {"mask_mod {q_len} = true;", "definition 'q_len' shadows a built-in name"},
      {"score_mod {exp} = score;", "definition 'exp' shadows a function"},
  }));
  Marked m = unmark(marked);
  CAPTURE(m.text);
  Checked c = check(m.text);
  INFO(dsl::render(c.diagnostics));
  auto errors = c.errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == message);
  CHECK(errors[0].line == 1);
  CHECK(errors[0].column == m.column);
  CHECK(errors[0].length == m.length);
  CHECK(c.module.defs.empty());
}

TEST_CASE("a let that fails is reported once, not at each use", "[typecheck]") {
  Checked c = check("score_mod s = let x = true + 1; x * x + score;");
  auto errors = c.errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "'+' needs int or float operands, not bool");
  CHECK(errors[0].column == 23);
}

TEST_CASE("every error of a definition and of a file is reported", "[typecheck]") {
  Checked c = check(
      "mask_mod a = q_idx > kv + 1 && !q_idx;\n"
      "mask_mod ok = true;\n"
      "score_mod s(x: float) = exp(x, x) + y + score;\n"
      "score_mod t = okk;\n");
  auto errors = c.errors();
  INFO(dsl::render(c.diagnostics));
  REQUIRE(errors.size() == 5);
  CHECK(errors[0].message == "unknown name 'kv'; did you mean 'kv_idx'?");
  CHECK(errors[0].line == 1);
  CHECK(errors[0].column == 22);
  CHECK(errors[1].message == "'!' needs a bool operand, not int");
  CHECK(errors[1].line == 1);
  CHECK(errors[1].column == 33);
  CHECK(errors[2].message == "'exp' takes 1 argument, got 2");
  CHECK(errors[2].line == 3);
  CHECK(errors[2].column == 25);
  CHECK(errors[3].message == "unknown name 'y'");
  CHECK(errors[3].line == 3);
  CHECK(errors[3].column == 37);
  CHECK(errors[4].message == "unknown name 'okk'; did you mean 'ok'?");
  CHECK(errors[4].line == 4);
  CHECK(errors[4].column == 15);
  // Only the clean definition is in the module.
  REQUIRE(c.module.defs.size() == 1);
  CHECK(c.module.defs[0].name == "ok");
}

TEST_CASE("definitions see only earlier definitions", "[typecheck]") {
  SECTION("a later definition is an unknown name, with a note") {
    Checked c = check("mask_mod a = later;\nmask_mod later = true;\n");
    REQUIRE(c.diagnostics.size() == 2);
    CHECK(c.diagnostics[0].message == "unknown name 'later'");
    CHECK(c.diagnostics[0].line == 1);
    CHECK(c.diagnostics[0].column == 14);
    CHECK(c.diagnostics[1].severity == dsl::Severity::Note);
    CHECK(c.diagnostics[1].line == 2);
    CHECK(c.diagnostics[1].column == 10);
    REQUIRE(c.module.defs.size() == 1);
    CHECK(c.module.defs[0].name == "later");
  }
  SECTION("a definition cannot call itself") {
    Checked c = check("mask_mod selfish = q_idx > 0 && selfish;");
    auto errors = c.errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "unknown name 'selfish'");
    CHECK(errors[0].column == 33);
    REQUIRE(c.diagnostics.size() == 2);
    CHECK(c.diagnostics[1].message == "a definition cannot call itself");
    CHECK(c.module.defs.empty());
  }
  SECTION("a redefinition is an error pointing at the first") {
    Checked c = check("mask_mod a = true;\nmask_mod a = false;\nmask_mod c = a;\n");
    REQUIRE(c.diagnostics.size() == 2);
    CHECK(c.diagnostics[0].message == "redefinition of 'a'");
    CHECK(c.diagnostics[0].line == 2);
    CHECK(c.diagnostics[0].column == 10);
    CHECK(c.diagnostics[1].severity == dsl::Severity::Note);
    CHECK(c.diagnostics[1].line == 1);
    // The first definition keeps the name.
    REQUIRE(c.module.defs.size() == 2);
    CHECK(c.module.defs[1].name == "c");
    CHECK(c.module.defs[1].body->index == 0);
  }
  SECTION("a parameter named like an earlier definition is an error") {
    Checked c = check("mask_mod a = true;\nmask_mod m(a: int) = a > 0;\n");
    auto errors = c.errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "'a' shadows an earlier definition");
    CHECK(errors[0].line == 2);
    CHECK(errors[0].column == 12);
  }
  SECTION("using a definition that had errors adds no second error") {
    Checked c = check("mask_mod bad = q_idx + 1;\nmask_mod uses = bad && true;\nmask_mod fine = true;\n");
    auto errors = c.errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 1);
    REQUIRE(c.module.defs.size() == 1);
    CHECK(c.module.defs[0].name == "fine");
  }
}

namespace {

// Four definitions for the calls below to use: indices 0 to 3.
const std::string prelude =
    "mask_mod causal = q_idx >= kv_idx;\n"
    "mask_mod window(w: int) = q_idx - kv_idx < w;\n"
    "score_mod softcap(cap: float) = cap * tanh(score / cap);\n"
    "mask_mod doc(d: int[B, N]) = d[b, q_idx] == d[b, kv_idx];\n";

}  // namespace

TEST_CASE("calls of earlier definitions become ModCall nodes", "[typecheck]") {
  SECTION("a score mod call passes the score first, promoted, then its arguments") {
    Checked c = check(prelude + "score_mod s(c: float) = softcap(q_idx, 30) + softcap(score * 2.0, c);\n");
    INFO(dsl::render(c.diagnostics));
    REQUIRE(c.diagnostics.empty());
    const Expr& body = c.module.defs.back().body;
    const Expr& first = body->operands[0];
    REQUIRE(first->kind == Kind::ModCall);
    CHECK(first->index == 2);
    CHECK(first->type == Type::Float);
    REQUIRE(first->operands.size() == 2);
    REQUIRE(is_cast_to_float(first->operands[0]));
    CHECK(is_builtin(first->operands[0]->operands[0], Builtin::QIdx));
    REQUIRE(is_cast_to_float(first->operands[1]));
    CHECK(is_const_int(first->operands[1]->operands[0], 30));
    const Expr& second = body->operands[1];
    REQUIRE(second->kind == Kind::ModCall);
    CHECK(second->operands[0]->op == Op::Mul);
    CHECK(second->operands[1]->kind == Kind::Param);
  }
  SECTION("a tensor parameter is passed whole as a TensorRef") {
    Checked c = check(prelude + "mask_mod m(x: float, docs: int[Q, K]) = doc(docs) && causal;\n");
    INFO(dsl::render(c.diagnostics));
    REQUIRE(c.diagnostics.empty());
    const Expr& body = c.module.defs.back().body;
    const Expr& call = body->operands[0];
    REQUIRE(call->kind == Kind::ModCall);
    CHECK(call->index == 3);
    CHECK(call->type == Type::Bool);
    REQUIRE(call->operands.size() == 1);
    CHECK(call->operands[0]->kind == Kind::TensorRef);
    CHECK(call->operands[0]->index == 1);
    CHECK(call->operands[0]->type == Type::Int);
    CHECK(body->operands[1]->kind == Kind::ModCall);
    CHECK(body->operands[1]->index == 0);
  }
  SECTION("a score mod's result may be compared in a mask mod") {
    Checked c = check(prelude + "mask_mod m = softcap(1.0, 2.0) > 0.0;\n");
    REQUIRE(c.diagnostics.empty());
    CHECK(c.module.defs.back().body->operands[0]->kind == Kind::ModCall);
  }
  SECTION("an int parameter takes an int argument as it is") {
    Checked c = check(prelude + "mask_mod m = causal && window(3);\n");
    REQUIRE(c.diagnostics.empty());
    const Expr& call = c.module.defs.back().body->operands[1];
    REQUIRE(call->kind == Kind::ModCall);
    CHECK(is_const_int(call->operands[0], 3));
  }
}

TEST_CASE("wrong calls of earlier definitions are reported at the argument or the call", "[typecheck]") {
  auto [marked, message] = GENERATE(table<std::string, std::string>({
      {"mask_mod m = {window};", "'window' takes 1 argument, got 0"},
      {"mask_mod m = {window()};", "'window' takes 1 argument, got 0"},
      {"mask_mod m = {window(1, 2)};", "'window' takes 1 argument, got 2"},
      {"mask_mod m = {causal(1)};", "'causal' takes 0 arguments, got 1"},
      {"mask_mod m = window({1.5});", "argument 'w' of 'window' must be int, not float"},
      {"mask_mod m = window({true});", "argument 'w' of 'window' must be int, not bool"},
      {"score_mod s = {softcap};", "'softcap' is a score mod; call it as softcap(score, ...)"},
      {"score_mod s = {softcap(score)};", "'softcap' takes 2 arguments, got 1 (the score first)"},
      {"score_mod s = softcap({q_idx > 0}, 1.0);", "the score argument of 'softcap' must be int or float, not bool"},
      {"score_mod s = softcap(score, {false});", "argument 'cap' of 'softcap' must be float, not bool"},
      {"mask_mod m(x: float[Q, K]) = doc({x});",
       "argument 'd' of 'doc' must be an int tensor of rank 2, got a float tensor of rank 2"},
      {"mask_mod m(x: int[Q]) = doc({x});",
       "argument 'd' of 'doc' must be an int tensor of rank 2, got an int tensor of rank 1"},
      {"mask_mod m(x: int[Q, K]) = doc({x[0, 0]});",
       "argument 'd' of 'doc' must name a tensor parameter: an int tensor of rank 2"},
      {"mask_mod m = {softcap(1.0, 2.0)};", "a mask mod's body must be bool, not float"},
      {"mask_mod m = {undefined_mod}(1);", "unknown name 'undefined_mod'"},
  }));
  Marked m = unmark(marked);
  CAPTURE(m.text);
  Checked c = check(prelude + m.text + "\n");
  INFO(dsl::render(c.diagnostics));
  auto errors = c.errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == message);
  CHECK(errors[0].line == 5);
  CHECK(errors[0].column == m.column);
  CHECK(errors[0].length == m.length);
  CHECK(c.module.defs.size() == 4);
}

TEST_CASE("the checker survives the deepest expressions the parser accepts", "[typecheck]") {
  std::string text = "score_mod s = ";
  for (int i = 0; i < 120; ++i) text += "-(";
  text += "score";
  for (int i = 0; i < 120; ++i) text += ")";
  text += ";";
  Checked c = check(text);
  INFO(dsl::render(c.diagnostics));
  REQUIRE(c.diagnostics.empty());
  REQUIRE(c.module.defs.size() == 1);
  CHECK(c.module.defs[0].body->op == Op::Neg);
}

TEST_CASE("a file with very many errors reports the first hundred and a note", "[typecheck]") {
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "mask_mod d" + std::to_string(i) + " = q_idxx > 0;\n";
  text += "mask_mod fine = true;\n";
  Checked c = check(text);
  CHECK(c.errors().size() == 100);
  CHECK(c.errors().front().message == "unknown name 'q_idxx'; did you mean 'q_idx'?");
  REQUIRE(c.diagnostics.size() > 100);
  CHECK(c.diagnostics.back().severity == dsl::Severity::Note);
  CHECK(c.diagnostics.back().message == "too many errors; the rest of the file is checked silently");
  // Checking went on: the clean definition at the end is in the module.
  REQUIRE(c.module.defs.size() == 1);
  CHECK(c.module.defs[0].name == "fine");
}

TEST_CASE("many definitions calling earlier ones check in linear-ish time", "[typecheck]") {
  std::string text = "mask_mod d0 = q_idx >= kv_idx;\n";
  const int count = 20000;
  for (int i = 1; i < count; ++i) {
    text += "mask_mod d" + std::to_string(i) + " = d" + std::to_string(i - 1) + " && d" + std::to_string(i / 2) + ";\n";
  }
  Checked c = check(text);
  REQUIRE(c.diagnostics.empty());
  REQUIRE(c.module.defs.size() == count);
  const Expr& last = c.module.defs.back().body;
  REQUIRE(last->operands[0]->kind == Kind::ModCall);
  CHECK(last->operands[0]->index == count - 2);
  CHECK(last->operands[1]->index == (count - 1) / 2);
}

TEST_CASE("errors inside an index expression come in source order", "[typecheck]") {
  Checked c = check("score_mod s(table: float[N]) = score + tabl[1.5] + table[true];");
  auto errors = c.errors();
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].message == "unknown name 'tabl'; did you mean 'table'?");
  CHECK(errors[0].column == 40);
  CHECK(errors[1].message == "a tensor index must be int, not float");
  CHECK(errors[1].column == 45);
  CHECK(errors[2].message == "a tensor index must be int, not bool");
  CHECK(errors[2].column == 58);
}

TEST_CASE("a tensor parameter has at most eight dimensions", "[typecheck]") {
  // The backends pass shapes and strides in fixed arrays of kMaxTensorRank entries; a ninth
  // dimension used to reach the CUDA generator and stop it with an internal error.
  CHECK(body_of("mask_mod m(t: int[A, B, C, D, E, F, G, H]) = t[0, 0, 0, 0, 0, 0, 0, 0] == 0;") != nullptr);
  Marked m = unmark("mask_mod m({t: int[A, B, C, D, E, F, G, H, I]}) = true;");
  Checked c = check(m.text);
  INFO(dsl::render(c.diagnostics));
  auto errors = c.errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "tensor 't' has 9 dimensions; a tensor parameter has at most 8");
  CHECK(errors[0].column == m.column);
  CHECK(c.module.defs.empty());
}
