#include "dsl/Parser.h"

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "dsl/Errors.h"
#include "dsl/Lexer.h"

using namespace attnc::dsl;

namespace {

struct Parsed {
  std::shared_ptr<const SourceFile> source;
  AstFile file;
  std::vector<Diagnostic> diagnostics;
  size_t errors = 0;
};

Parsed parse(std::string text) {
  Parsed out;
  out.source = std::make_shared<const SourceFile>("test.attn", std::move(text));
  DiagnosticEngine diagnostics(out.source);
  out.file = parse_file(out.source, diagnostics);
  out.diagnostics = diagnostics.diagnostics();
  out.errors = diagnostics.error_count();
  return out;
}

// A fully parenthesised rendering of an expression, so that tests can state the tree's shape.
std::string show(const AstExpr& e) {
  auto list = [&](size_t first) {
    std::string out;
    for (size_t i = first; i < e.operands.size(); ++i) out += (i > first ? ", " : "") + show(*e.operands[i]);
    return out;
  };
  switch (e.kind) {
    case AstKind::IntLiteral: return std::to_string(e.int_value);
    case AstKind::FloatLiteral: return fmt::format("{}f", e.float_value);
    case AstKind::BoolLiteral: return e.bool_value ? "true" : "false";
    case AstKind::Inf: return "inf";
    case AstKind::Name: return e.name;
    case AstKind::Call: return e.name + "(" + list(0) + ")";
    case AstKind::Index: return show(*e.operands[0]) + "[" + list(1) + "]";
    case AstKind::Unary: return fmt::format("({}{})", spelling(e.unary_op), show(*e.operands[0]));
    case AstKind::Binary:
      return fmt::format("({} {} {})", show(*e.operands[0]), spelling(e.binary_op), show(*e.operands[1]));
    case AstKind::Conditional:
      return fmt::format("({} ? {} : {})", show(*e.operands[0]), show(*e.operands[1]), show(*e.operands[2]));
  }
  return "<?>";
}

// Parses `expr` as the body of a score mod and returns the body's shape, or the diagnostics.
std::string shape(const std::string& expr) {
  Parsed parsed = parse("score_mod s = " + expr + ";");
  if (!parsed.diagnostics.empty()) return "error: " + render(parsed.diagnostics);
  REQUIRE(parsed.file.definitions.size() == 1);
  return show(*parsed.file.definitions[0].body);
}

std::string messages(const Parsed& parsed) {
  std::string out;
  for (const Diagnostic& d : parsed.diagnostics) out += fmt::format("{}:{}: {}\n", d.line, d.column, d.message);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("Binary operators follow C precedence and associativity", "[dsl][parser]") {
  auto [expr, expected] = GENERATE(table<std::string, std::string>({
      {"a || b && c", "(a || (b && c))"},
      {"a && b || c", "((a && b) || c)"},
      {"a || b || c", "((a || b) || c)"},
      {"a == b && c != d", "((a == b) && (c != d))"},
      {"a && b == c", "(a && (b == c))"},
      {"a == b == c", "((a == b) == c)"},
      {"a < b == c >= d", "((a < b) == (c >= d))"},
      {"a <= b > c", "((a <= b) > c)"},
      {"a + b < c * d", "((a + b) < (c * d))"},
      {"a - b - c", "((a - b) - c)"},
      {"a - b + c", "((a - b) + c)"},
      {"a + b * c", "(a + (b * c))"},
      {"a * b + c", "((a * b) + c)"},
      {"a / b * c % d", "(((a / b) * c) % d)"},
      {"(a + b) * c", "((a + b) * c)"},
      {"a * (b + c)", "(a * (b + c))"},
      {"((a))", "a"},
      {"1 + 2.5 * inf", "(1 + (2.5f * inf))"},
  }));
  CAPTURE(expr);
  CHECK(shape(expr) == expected);
}

TEST_CASE("Unary operators bind tighter than binary ones", "[dsl][parser]") {
  auto [expr, expected] = GENERATE(table<std::string, std::string>({
      {"-a * b", "((-a) * b)"},
      {"-a - -b", "((-a) - (-b))"},
      {"- -a", "(-(-a))"},
      {"!a && b", "((!a) && b)"},
      {"!!a", "(!(!a))"},
      {"!(a && b)", "(!(a && b))"},
      {"-inf", "(-inf)"},
      {"-t[i]", "(-t[i])"},
      {"-f(x)", "(-f(x))"},
  }));
  CAPTURE(expr);
  CHECK(shape(expr) == expected);
}

TEST_CASE("The conditional operator is loosest and right-associative", "[dsl][parser]") {
  auto [expr, expected] = GENERATE(table<std::string, std::string>({
      {"a ? b : c", "(a ? b : c)"},
      {"a ? b : c ? d : e", "(a ? b : (c ? d : e))"},
      {"a ? b ? c : d : e", "(a ? (b ? c : d) : e)"},
      {"a || b ? c + 1 : d", "((a || b) ? (c + 1) : d)"},
      {"a ? b : c || d", "(a ? b : (c || d))"},
      {"(a ? b : c) + 1", "((a ? b : c) + 1)"},
  }));
  CAPTURE(expr);
  CHECK(shape(expr) == expected);
}

TEST_CASE("Calls and tensor indexing parse as postfix expressions", "[dsl][parser]") {
  auto [expr, expected] = GENERATE(table<std::string, std::string>({
      {"f(a, b + c)", "f(a, (b + c))"},
      {"g()", "g()"},
      {"clamp(q_idx - kv_idx, 0, R - 1)", "clamp((q_idx - kv_idx), 0, (R - 1))"},
      {"float(x) + int(y)", "(float(x) + int(y))"},
      {"bool(x)", "bool(x)"},
      {"t[h, q_idx - 1] * 2", "(t[h, (q_idx - 1)] * 2)"},
      {"t[i]", "t[i]"},
      {"doc[b, q_idx] == doc[b, kv_idx]", "(doc[b, q_idx] == doc[b, kv_idx])"},
      {"f(x)[0]", "f(x)[0]"},
      {"(t)[i]", "t[i]"},
      {"t[u[i]]", "t[u[i]]"},
      {"m(a ? b : c)", "m((a ? b : c))"},
  }));
  CAPTURE(expr);
  CHECK(shape(expr) == expected);
}

TEST_CASE("Literals keep their values", "[dsl][parser]") {
  Parsed parsed = parse("score_mod s = f(0, 4096, 0.5, 1e-3, 2., true, false, inf, 99999999999999999999999);");
  REQUIRE(parsed.diagnostics.empty());
  const AstExpr& call = *parsed.file.definitions[0].body;
  REQUIRE(call.operands.size() == 9);
  CHECK(call.operands[0]->kind == AstKind::IntLiteral);
  CHECK(call.operands[0]->int_value == 0);
  CHECK(call.operands[1]->int_value == 4096);
  CHECK(call.operands[2]->kind == AstKind::FloatLiteral);
  CHECK(call.operands[2]->float_value == 0.5);
  CHECK(call.operands[3]->float_value == 1e-3);
  CHECK(call.operands[4]->float_value == 2.0);
  CHECK(call.operands[5]->kind == AstKind::BoolLiteral);
  CHECK(call.operands[5]->bool_value);
  CHECK_FALSE(call.operands[6]->bool_value);
  CHECK(call.operands[7]->kind == AstKind::Inf);
  CHECK(call.operands[8]->int_value == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("Expression nodes record their ranges and depth", "[dsl][parser]") {
  Parsed parsed = parse("score_mod s = -(a + b) * f(c, t[i, j]) ? x : y;");
  REQUIRE(parsed.diagnostics.empty());
  const SourceFile& source = *parsed.source;
  const AstExpr& cond = *parsed.file.definitions[0].body;
  CHECK(cond.kind == AstKind::Conditional);
  CHECK(source.slice(cond.range) == "-(a + b) * f(c, t[i, j]) ? x : y");
  CHECK(source.slice(cond.op_range) == "?");
  CHECK(cond.depth == 5);

  const AstExpr& mul = *cond.operands[0];
  CHECK(mul.binary_op == BinaryOp::Mul);
  CHECK(source.slice(mul.range) == "-(a + b) * f(c, t[i, j])");
  CHECK(source.slice(mul.op_range) == "*");
  CHECK(mul.depth == 4);

  const AstExpr& neg = *mul.operands[0];
  CHECK(neg.kind == AstKind::Unary);
  CHECK(neg.unary_op == UnaryOp::Neg);
  CHECK(source.slice(neg.range) == "-(a + b)");
  CHECK(source.slice(neg.op_range) == "-");
  CHECK(neg.depth == 3);

  const AstExpr& sum = *neg.operands[0];
  CHECK(source.slice(sum.range) == "(a + b)");  // the parentheses belong to the operand
  CHECK(source.slice(sum.op_range) == "+");
  CHECK(sum.depth == 2);
  CHECK(sum.operands[0]->depth == 1);
  CHECK(source.slice(sum.operands[0]->op_range) == "a");

  const AstExpr& call = *mul.operands[1];
  CHECK(call.kind == AstKind::Call);
  CHECK(call.name == "f");
  CHECK(source.slice(call.range) == "f(c, t[i, j])");
  CHECK(source.slice(call.op_range) == "f");
  CHECK(call.depth == 3);

  const AstExpr& index = *call.operands[1];
  CHECK(index.kind == AstKind::Index);
  CHECK(source.slice(index.range) == "t[i, j]");
  CHECK(source.slice(index.op_range) == "[");
  CHECK(index.operands.size() == 3);
  CHECK(index.operands[0]->name == "t");
}

TEST_CASE("Definitions parse with their parameters, types and lets", "[dsl][parser]") {
  SECTION("a mask mod without parameters") {
    Parsed parsed = parse("mask_mod causal = q_idx >= kv_idx;");
    REQUIRE(parsed.diagnostics.empty());
    REQUIRE(parsed.file.definitions.size() == 1);
    const AstDefinition& d = parsed.file.definitions[0];
    CHECK(d.kind == ModKind::Mask);
    CHECK(d.name == "causal");
    CHECK(parsed.source->slice(d.name_range) == "causal");
    CHECK(parsed.source->slice(d.range) == "mask_mod causal = q_idx >= kv_idx;");
    CHECK(d.params.empty());
    CHECK(d.lets.empty());
    CHECK(show(*d.body) == "(q_idx >= kv_idx)");
  }
  SECTION("an empty parameter list") {
    Parsed parsed = parse("score_mod s() = score;");
    REQUIRE(parsed.diagnostics.empty());
    CHECK(parsed.file.definitions[0].kind == ModKind::Score);
    CHECK(parsed.file.definitions[0].params.empty());
  }
  SECTION("scalar and tensor parameters") {
    Parsed parsed = parse("score_mod s(cap: float, on: bool, t: int[B, 16], u: float[N]) = score;");
    REQUIRE(parsed.diagnostics.empty());
    const std::vector<AstParam>& params = parsed.file.definitions[0].params;
    REQUIRE(params.size() == 4);
    CHECK(params[0].name == "cap");
    CHECK(parsed.source->slice(params[0].name_range) == "cap");
    CHECK(params[0].type.elem == ElemKind::Float);
    CHECK(params[0].type.dims.empty());
    CHECK(parsed.source->slice(params[0].type.range) == "float");
    CHECK(params[1].type.elem == ElemKind::Bool);
    CHECK(params[2].type.elem == ElemKind::Int);
    REQUIRE(params[2].type.dims.size() == 2);
    CHECK(params[2].type.dims[0].name == "B");
    CHECK(parsed.source->slice(params[2].type.dims[0].range) == "B");
    CHECK(params[2].type.dims[1].name.empty());
    CHECK(params[2].type.dims[1].size == 16);
    CHECK(parsed.source->slice(params[2].type.range) == "int[B, 16]");
    CHECK(params[3].type.dims.size() == 1);
  }
  SECTION("lets before the final expression") {
    Parsed parsed = parse(
        "score_mod relative_bias(table: float[NH, R]) =\n"
        "    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);\n"
        "    let e = d * 2;\n"
        "    score + table[h, e];\n");
    REQUIRE(parsed.diagnostics.empty());
    const AstDefinition& d = parsed.file.definitions[0];
    REQUIRE(d.lets.size() == 2);
    CHECK(d.lets[0].name == "d");
    CHECK(parsed.source->slice(d.lets[0].name_range) == "d");
    CHECK(show(*d.lets[0].value) == "clamp(((q_idx - kv_idx) + (R / 2)), 0, (R - 1))");
    CHECK(d.lets[1].name == "e");
    CHECK(show(*d.body) == "(score + table[h, e])");
    CHECK(parsed.source->slice(d.range).back() == ';');
  }
}

TEST_CASE("The contract's example file parses cleanly", "[dsl][parser]") {
  Parsed parsed = parse(R"(mask_mod causal = q_idx >= kv_idx;

mask_mod sliding_window(window: int) = q_idx >= kv_idx && q_idx - kv_idx < window;

score_mod alibi(slopes: float[H]) = score - slopes[h] * abs(q_idx - kv_idx);

score_mod softcap(cap: float) = cap * tanh(score / cap);

mask_mod document(doc: int[B, N]) = doc[b, q_idx] == doc[b, kv_idx];

score_mod relative_bias(table: float[NH, R]) =
    let d = clamp(q_idx - kv_idx + R / 2, 0, R - 1);
    score + table[h, d];

mask_mod local_causal(window: int) = causal && sliding_window(window);
)");
  CHECK(messages(parsed).empty());
  std::vector<std::string> names;
  for (const AstDefinition& d : parsed.file.definitions) names.push_back(d.name);
  CHECK(names == std::vector<std::string>{"causal", "sliding_window", "alibi", "softcap", "document", "relative_bias",
                                          "local_causal"});
  CHECK(show(*parsed.file.definitions[1].body) == "((q_idx >= kv_idx) && ((q_idx - kv_idx) < window))");
  CHECK(show(*parsed.file.definitions[2].body) == "(score - (slopes[h] * abs((q_idx - kv_idx))))");
  CHECK(parsed.file.source == parsed.source);
}

TEST_CASE("Each syntax error is reported where it happened", "[dsl][parser]") {
  auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"mask_mod = x;", "1:10: expected a name after 'mask_mod'"},
      {"score_mod int = x;", "1:11: expected a name after 'score_mod'; 'int' is a keyword"},
      {"mask_mod m x;", "1:12: expected '=' before the definition's body"},
      {"mask_mod m == x;", "1:12: expected '=' before the definition's body, not '=='"},
      {"mask_mod m(x int) = x;", "1:14: expected ':' and a type after parameter 'x'"},
      {"mask_mod m(x: double) = x;", "1:15: expected 'int', 'float' or 'bool' as the type of 'x'"},
      {"mask_mod m(x: int y: int) = x;", "1:19: expected ',' or ')' after parameter 'x'"},
      {"mask_mod m(: int) = x;", "1:12: expected a parameter name"},
      {"mask_mod m(let: int) = x;", "1:12: expected a parameter name; 'let' is a keyword"},
      {"mask_mod m(x: float[]) = x;", "1:21: expected a dimension (a name or an integer) in the type of 'x'"},
      {"mask_mod m(x: float[N M]) = x;", "1:23: expected ',' or ']' in the type of 'x'"},
      {"mask_mod m(x: float[N,]) = x;", "1:23: expected a dimension (a name or an integer) in the type of 'x'"},
      {"mask_mod m = ;", "1:14: expected expression"},
      {"mask_mod m = a +;", "1:17: expected expression"},
      {"mask_mod m = a", "1:15: expected ';' after definition"},
      {"mask_mod m = a b;", "1:15: expected ';' after definition"},
      {"mask_mod m = a = b;", "1:16: expected ';' after definition; did you mean '=='?"},
      {"mask_mod m = (a;", "1:16: expected ')'"},
      {"mask_mod m = ();", "1:15: expected expression"},
      {"mask_mod m = f(a b);", "1:18: expected ',' or ')' in the call of 'f'"},
      {"mask_mod m = f(a,);", "1:18: expected expression"},
      {"mask_mod m = t[a b];", "1:18: expected ',' or ']' after an index"},
      {"mask_mod m = t[];", "1:16: expected expression"},
      {"mask_mod m = t[a][b];",
       "1:18: a tensor takes all its indices in one pair of brackets: write t[i, j], not t[i][j]"},
      {"mask_mod m = a ? b;", "1:19: expected ':' in the conditional expression"},
      {"mask_mod m = int;", "1:14: expected expression; 'int' is a type (write int(x) to convert)"},
      {"mask_mod m = let x 1; x;", "1:20: expected '=' after 'let x'"},
      {"mask_mod m = let = 1; x;", "1:18: expected a name after 'let'"},
      {"mask_mod m = let x = 1 x;", "1:23: expected ';' after 'let x'"},
      {"mask_mod m = let x = 1 = 2; x;", "1:24: expected ';' after 'let x'; did you mean '=='?"},
      {"mask_mod m = let x = 1;", "1:24: expected the expression that gives the definition's value after its lets"},
      {"mask_mod m = x; let y = 1; y;",
       "1:17: 'let' after the final expression of a definition; the lets come first and the expression that "
       "gives the definition's value comes last"},
      {"x = 1;", "1:1: expected 'score_mod' or 'mask_mod' to begin a definition, found a name"},
      {";", "1:1: expected 'score_mod' or 'mask_mod' to begin a definition, found ';'"},
      {"let x = 1; mask_mod m = x;", "1:1: expected 'score_mod' or 'mask_mod' to begin a definition, found 'let'"},
      {"mask_mod m(x: int", "1:18: expected ',' or ')' after parameter 'x'"},
      {"mask_mod m = a +\n", "1:17: expected expression"},
      {"mask_mod m = 1 $ 2;", "1:16: unexpected character '$'"},
      {"mask_mod m = .5;", "1:14: a float literal needs a digit before its '.': write '0.5'"},
  }));
  CAPTURE(text);
  Parsed parsed = parse(text);
  CHECK(messages(parsed) == expected + "\n");
  CHECK(parsed.errors == 1);
  size_t good = text.find("let y") != std::string::npos || text.find("let x = 1; mask_mod") == 0 ? 1 : 0;
  CHECK(parsed.file.definitions.size() == good);
}

TEST_CASE("The parser recovers at ';' and reports every error of a file", "[dsl][parser]") {
  SECTION("errors in separate definitions, good ones kept") {
    Parsed parsed = parse(
        "mask_mod a = q_idx >= kv_idx;\n"       // 1
        "mask_mod b = q_idx >= ;\n"             // 2: error
        "mask_mod c = true;\n"                  // 3
        "score_mod d(x: flaot) = score * x;\n"  // 4: error
        "score_mod e = (score;\n"               // 5: error
        "score_mod f = score;\n");              // 6
    CHECK(messages(parsed) ==
          "2:23: expected expression\n"
          "4:16: expected 'int', 'float' or 'bool' as the type of 'x'\n"
          "5:21: expected ')'\n");
    std::vector<std::string> names;
    for (const AstDefinition& d : parsed.file.definitions) names.push_back(d.name);
    CHECK(names == std::vector<std::string>{"a", "c", "f"});
  }
  SECTION("several errors in one definition's lets and body") {
    Parsed parsed = parse(
        "score_mod s =\n"
        "  let a = 1 +;\n"
        "  let b = (2;\n"
        "  let c = 3;\n"
        "  a + * b;\n"
        "mask_mod ok = true;\n");
    CHECK(messages(parsed) ==
          "2:14: expected expression\n"
          "3:13: expected ')'\n"
          "5:7: expected expression\n");
    REQUIRE(parsed.file.definitions.size() == 1);
    CHECK(parsed.file.definitions[0].name == "ok");
  }
  SECTION("a missing ';' does not swallow the next definition") {
    Parsed parsed = parse(
        "mask_mod a = q_idx >= kv_idx\n"
        "mask_mod b = (q_idx\n"
        "mask_mod c = true;\n");
    CHECK(messages(parsed) ==
          "1:29: expected ';' after definition\n"
          "3:1: expected ')'\n");
    REQUIRE(parsed.file.definitions.size() == 1);
    CHECK(parsed.file.definitions[0].name == "c");
  }
  SECTION("a broken let does not swallow the next let") {
    Parsed parsed = parse("score_mod s = let a = 1\n let b = ; b;");
    CHECK(messages(parsed) ==
          "1:24: expected ';' after 'let a'\n"
          "2:10: expected expression\n");
  }
  SECTION("the rest of a broken definition is skipped quietly") {
    Parsed parsed = parse("mask_mod m(x: int; y: int) = x; mask_mod n = true;");
    CHECK(messages(parsed) == "1:18: expected ',' or ')' after parameter 'x'\n");
    REQUIRE(parsed.file.definitions.size() == 1);
    CHECK(parsed.file.definitions[0].name == "n");
  }
  SECTION("an invalid character is reported once, by the lexer") {
    Parsed parsed = parse("mask_mod m = q_idx @ kv_idx;\nmask_mod n = @;\nmask_mod o = true;");
    CHECK(messages(parsed) ==
          "1:20: unexpected character '@'\n"
          "2:14: unexpected character '@'\n");
    REQUIRE(parsed.file.definitions.size() == 1);
    CHECK(parsed.file.definitions[0].name == "o");
  }
  SECTION("too many errors end in one note") {
    std::string text;
    for (int i = 0; i < 500; ++i) text += "mask_mod m = ;\n";
    Parsed parsed = parse(text);
    CHECK(parsed.errors == kMaxSyntaxErrors);
    REQUIRE(parsed.diagnostics.size() == kMaxSyntaxErrors + 1);
    CHECK(parsed.diagnostics.back().severity == Severity::Note);
    CHECK(parsed.diagnostics.back().line == 101);
    CHECK(parsed.diagnostics[99].line == 100);
  }
}

TEST_CASE("Expressions deeper than the limit are refused at the limit", "[dsl][parser]") {
  const std::string too_deep = "expression is nested too deeply (more than 256 levels)";
  auto repeat = [](const std::string& piece, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += piece;
    return out;
  };
  SECTION("a left-associative chain") {
    Parsed ok = parse("score_mod s = a" + repeat(" + a", kMaxExpressionDepth - 1) + ";");
    CHECK(messages(ok).empty());
    REQUIRE(ok.file.definitions.size() == 1);
    CHECK(ok.file.definitions[0].body->depth == kMaxExpressionDepth);
    Parsed bad = parse("score_mod s = a" + repeat(" + a", kMaxExpressionDepth) + ";");
    REQUIRE(bad.errors == 1);
    CHECK(bad.diagnostics[0].message == too_deep);
    CHECK(bad.diagnostics[0].column == 16 + 4 * (kMaxExpressionDepth - 1) + 1);  // the last '+'
    CHECK(bad.file.definitions.empty());
  }
  SECTION("a chain of unary operators") {
    Parsed ok = parse("score_mod s = " + repeat("-", kMaxExpressionDepth - 1) + "a;");
    CHECK(messages(ok).empty());
    REQUIRE(ok.file.definitions.size() == 1);
    CHECK(ok.file.definitions[0].body->depth == kMaxExpressionDepth);
    Parsed bad = parse("score_mod s = " + repeat("!", kMaxExpressionDepth) + "a;");
    REQUIRE(bad.errors == 1);
    CHECK(bad.diagnostics[0].message == too_deep);
  }
  SECTION("nested parentheses") {
    size_t n = kMaxExpressionDepth - 1;
    Parsed ok = parse("score_mod s = " + repeat("(", n) + "a" + repeat(")", n) + ";");
    CHECK(messages(ok).empty());
    Parsed bad = parse("score_mod s = " + repeat("(", n + 1) + "a" + repeat(")", n + 1) + ";");
    REQUIRE(bad.errors == 1);
    CHECK(bad.diagnostics[0].message == too_deep);
    CHECK(bad.diagnostics[0].column == 15 + n + 1);  // the descent stops at 'a'
  }
  SECTION("nested calls and a right-associative ?: chain") {
    Parsed calls = parse("score_mod s = " + repeat("f(", 300) + "a" + repeat(")", 300) + ";");
    REQUIRE(calls.errors == 1);
    CHECK(calls.diagnostics[0].message == too_deep);
    Parsed conditional = parse("score_mod s = " + repeat("c ? a : ", 300) + "b;");
    REQUIRE(conditional.errors == 1);
    CHECK(conditional.diagnostics[0].message == too_deep);
  }
  SECTION("the file goes on after a refused expression") {
    Parsed parsed = parse("score_mod s = " + repeat("(", 1000) + ";\nmask_mod m = true;");
    CHECK(parsed.errors == 1);
    REQUIRE(parsed.file.definitions.size() == 1);
    CHECK(parsed.file.definitions[0].name == "m");
  }
}

TEST_CASE("Malformed input of any size never crashes and parses in linear time", "[dsl][parser][robustness]") {
  const size_t mb = 1 << 20;
  std::mt19937 random(2024);
  std::string random_bytes(mb, '\0');
  for (char& c : random_bytes) c = static_cast<char>(random() & 0xff);
  std::string random_tokens;
  const char* pieces[] = {"(", ")", "[",   "]",   ",",        ";",         "=",  "?",  ":",   "-", "!",  "+", "&&",
                          "a", "1", "2.5", "let", "mask_mod", "score_mod", "f(", "t[", "int", " ", "\n", "#", "inf"};
  while (random_tokens.size() < mb) random_tokens += pieces[random() % std::size(pieces)];
  auto repeat = [&](const std::string& piece) {
    std::string out;
    while (out.size() < mb) out += piece;
    return out;
  };
  auto [name, text] = GENERATE_COPY(table<std::string, std::string>({
      {"empty file", ""},
      {"only comments", "# one\n# two\n   # three"},
      {"unterminated parameter list", "mask_mod m(x: float["},
      {"unterminated call", "score_mod s = f(a, "},
      {"unterminated let", "score_mod s = let x ="},
      {"a keyword alone", "mask_mod"},
      {"1 MB of '('", repeat("(")},
      {"1 MB of '(' in a definition", "mask_mod m = " + repeat("(")},
      {"1 MB of '-' in a definition", "mask_mod m = " + repeat("-")},
      {"1 MB of ')'", repeat(")")},
      {"1 MB of ';'", repeat(";")},
      {"1 MB of a+ chain", "mask_mod m = " + repeat("a+") + "a;"},
      {"1 MB of ?: chain", "mask_mod m = " + repeat("a?b:") + "c;"},
      {"1 MB of calls", "mask_mod m = " + repeat("f(")},
      {"1 MB of indexing", "mask_mod m = " + repeat("t[")},
      {"1 MB of lets", "mask_mod m = " + repeat("let x = 1;") + "x;"},
      {"1 MB of keywords", repeat("mask_mod ")},
      {"1 MB of one name", "mask_mod m = " + std::string(mb, 'x') + ";"},
      {"1 MB of digits", "mask_mod m = " + std::string(mb, '9') + ";"},
      {"1 MB of random bytes", random_bytes},
      {"1 MB of random tokens", random_tokens},
  }));
  CAPTURE(name);
  auto start = std::chrono::steady_clock::now();
  Parsed parsed;
  REQUIRE_NOTHROW(parsed = parse(text));
  CHECK(seconds_since(start) < 2.0);
  CHECK(parsed.errors <= kMaxSyntaxErrors);
  CHECK(parsed.diagnostics.size() <= kMaxSyntaxErrors + 1);
  bool fine = name == "empty file" || name == "only comments" || name == "1 MB of lets" || name == "1 MB of one name" ||
              name == "1 MB of digits";
  if (fine) {
    CHECK(messages(parsed).empty());
  } else {
    CHECK(parsed.errors > 0);
  }
  for (const AstDefinition& d : parsed.file.definitions) {
    REQUIRE(d.body);
    CHECK(d.body->depth <= kMaxExpressionDepth);
  }
}

TEST_CASE("parse_file insists on a DiagnosticEngine for the same file", "[dsl][parser]") {
  auto source = std::make_shared<const SourceFile>("a.attn", "mask_mod m = true;");
  auto other = std::make_shared<const SourceFile>("a.attn", "mask_mod m = true;");
  DiagnosticEngine diagnostics(other);
  CHECK_THROWS_AS(parse_file(source, diagnostics), attnc::InternalError);
}
