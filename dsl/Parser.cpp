#include "dsl/Parser.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "dsl/Lexer.h"
#include "dsl/Token.h"

namespace attnc::dsl {

namespace {

// Binary operators by precedence, loosest first (C's order): || && (== !=) (< <= > >=) (+ -) (* / %).
struct BinaryInfo {
  BinaryOp op;
  int precedence;
};

std::optional<BinaryInfo> binary_info(TokenKind kind) {
  switch (kind) {
    case TokenKind::PipePipe: return BinaryInfo{BinaryOp::Or, 1};
    case TokenKind::AmpAmp: return BinaryInfo{BinaryOp::And, 2};
    case TokenKind::EqualEqual: return BinaryInfo{BinaryOp::Eq, 3};
    case TokenKind::BangEqual: return BinaryInfo{BinaryOp::Ne, 3};
    case TokenKind::Less: return BinaryInfo{BinaryOp::Lt, 4};
    case TokenKind::LessEqual: return BinaryInfo{BinaryOp::Le, 4};
    case TokenKind::Greater: return BinaryInfo{BinaryOp::Gt, 4};
    case TokenKind::GreaterEqual: return BinaryInfo{BinaryOp::Ge, 4};
    case TokenKind::Plus: return BinaryInfo{BinaryOp::Add, 5};
    case TokenKind::Minus: return BinaryInfo{BinaryOp::Sub, 5};
    case TokenKind::Star: return BinaryInfo{BinaryOp::Mul, 6};
    case TokenKind::Slash: return BinaryInfo{BinaryOp::Div, 6};
    case TokenKind::Percent: return BinaryInfo{BinaryOp::Mod, 6};
    default: return std::nullopt;
  }
}

constexpr int kLoosestBinary = 1;

std::string too_deep_message() {
  return fmt::format("expression is nested too deeply (more than {} levels)", kMaxExpressionDepth);
}

// Counts how deep the parser has recursed into nested expressions, so that 1 MB of '(' or of '-'
// stops at the limit instead of overflowing the stack. Parentheses count as a level here even
// though they make no node, which is the price of never descending past the limit.
class NestingScope {
 public:
  explicit NestingScope(uint32_t& nesting) : nesting_(nesting) { ++nesting_; }
  ~NestingScope() { --nesting_; }
  NestingScope(const NestingScope&) = delete;
  NestingScope& operator=(const NestingScope&) = delete;
  bool too_deep() const { return nesting_ > kMaxExpressionDepth; }

 private:
  uint32_t& nesting_;
};

// The parser of one file. Every parse_* function returns nullptr / nullopt / false after it has
// reported an error (or after the lexer reported the Invalid token it stopped at); callers give up
// on the construct and the definition or `let` recovers at the next ';'.
class Parser {
 public:
  Parser(std::shared_ptr<const SourceFile> source, DiagnosticEngine& diagnostics)
      : source_(std::move(source)), lexer_(*source_, diagnostics) {
    current_ = lexer_.next();
  }

  AstFile parse_file();

 private:
  std::optional<AstDefinition> parse_definition();
  bool parse_params(std::vector<AstParam>& params);
  std::optional<AstParam> parse_param();
  std::optional<AstType> parse_type(const std::string& param_name);
  std::optional<AstDim> parse_dim(const std::string& param_name);
  bool parse_body(AstDefinition& definition);
  std::optional<AstLet> parse_let();
  AstExprPtr parse_expr();
  AstExprPtr parse_binary(int min_precedence);
  AstExprPtr parse_unary();
  AstExprPtr parse_postfix();
  AstExprPtr parse_primary();
  AstExprPtr parse_call(const Token& name);

  // A new node over `operands`, or nullptr (with a diagnostic) when it would be too deep.
  AstExprPtr make_node(AstKind kind, SourceRange range, SourceRange op_range, std::vector<AstExprPtr> operands);
  AstExprPtr make_leaf(AstKind kind, const Token& token);

  bool at(TokenKind kind) const { return current_.kind == kind; }
  bool at_definition_start() const { return at(TokenKind::KwScoreMod) || at(TokenKind::KwMaskMod); }
  Token advance();
  bool accept(TokenKind kind);

  // Reports at the current token; at the end of the file, just after the last token instead, so the
  // caret lands on a line with text. An Invalid token has been reported by the lexer already.
  void error_at_current(std::string message);
  // Reports just after the previous token, where a missing ';' or ')' belongs.
  void error_after_previous(std::string message);
  void error(SourceRange range, std::string message) { lexer_.error(range, std::move(message)); }
  // Error recovery: skips past the next ';', or up to the next definition keyword or the end;
  // inside a body also up to the next 'let', which can only begin a let.
  void recover(bool stop_at_let = false);

  std::shared_ptr<const SourceFile> source_;
  Lexer lexer_;
  Token current_;
  uint32_t previous_end_ = 0;
  uint32_t nesting_ = 0;
};

Token Parser::advance() {
  Token token = current_;
  previous_end_ = token.range.end;
  current_ = lexer_.next();
  return token;
}

bool Parser::accept(TokenKind kind) {
  if (!at(kind)) return false;
  advance();
  return true;
}

void Parser::error_at_current(std::string message) {
  if (at(TokenKind::Invalid)) return;
  SourceRange range = at(TokenKind::End) ? SourceRange{previous_end_, previous_end_} : current_.range;
  error(range, std::move(message));
}

void Parser::error_after_previous(std::string message) {
  if (at(TokenKind::Invalid)) return;
  error({previous_end_, previous_end_}, std::move(message));
}

// A definition keyword can only begin a definition, so recovery stops in front of one even when
// the ';' before it is missing; that keeps one broken definition from swallowing the next.
void Parser::recover(bool stop_at_let) {
  while (!at(TokenKind::End) && !at_definition_start() && !(stop_at_let && at(TokenKind::KwLet))) {
    if (advance().kind == TokenKind::Semicolon) return;
  }
}

// file := { definition }
AstFile Parser::parse_file() {
  AstFile file;
  file.source = source_;
  // After a broken definition, text up to the next keyword is most likely the rest of it (a ';'
  // inside a broken parameter list, the lets after a broken header), so it is skipped quietly.
  bool after_broken_definition = false;
  bool after_definition = false;
  while (!at(TokenKind::End)) {
    if (at_definition_start()) {
      std::optional<AstDefinition> definition = parse_definition();
      after_broken_definition = !definition;
      after_definition = definition.has_value();
      if (definition) file.definitions.push_back(std::move(*definition));
      continue;
    }
    if (!after_broken_definition) {
      if (at(TokenKind::KwLet) && after_definition) {
        error_at_current(
            "'let' after the final expression of a definition; the lets come first and the expression that "
            "gives the definition's value comes last");
      } else {
        error_at_current(
            fmt::format("expected 'score_mod' or 'mask_mod' to begin a definition, found {}", describe(current_.kind)));
      }
    }
    recover();
    after_broken_definition = true;
    after_definition = false;
  }
  return file;
}

// definition := ( "score_mod" | "mask_mod" ) NAME [ "(" [ param { "," param } ] ")" ] "=" body ";"
std::optional<AstDefinition> Parser::parse_definition() {
  AstDefinition definition;
  Token keyword = advance();
  definition.kind = keyword.kind == TokenKind::KwScoreMod ? ModKind::Score : ModKind::Mask;
  bool ok = [&] {
    if (!at(TokenKind::Name)) {
      std::string message = fmt::format("expected a name after '{}'", spelling(definition.kind));
      if (is_keyword(current_.kind)) message += fmt::format("; '{}' is a keyword", current_.text);
      error_at_current(std::move(message));
      return false;
    }
    Token name = advance();
    definition.name = std::string(name.text);
    definition.name_range = name.range;
    if (at(TokenKind::LParen) && !parse_params(definition.params)) return false;
    if (!accept(TokenKind::Assign)) {
      error_at_current(at(TokenKind::EqualEqual) ? "expected '=' before the definition's body, not '=='"
                                                 : "expected '=' before the definition's body");
      return false;
    }
    return true;
  }();
  if (!ok) {
    recover();
    return std::nullopt;
  }
  if (!parse_body(definition)) return std::nullopt;
  definition.range = {keyword.range.begin, previous_end_};
  return definition;
}

// The "(" [ param { "," param } ] ")" part of a definition.
bool Parser::parse_params(std::vector<AstParam>& params) {
  advance();  // (
  if (accept(TokenKind::RParen)) return true;
  while (true) {
    std::optional<AstParam> param = parse_param();
    if (!param) return false;
    params.push_back(std::move(*param));
    if (accept(TokenKind::RParen)) return true;
    if (!accept(TokenKind::Comma)) {
      error_at_current(fmt::format("expected ',' or ')' after parameter '{}'", params.back().name));
      return false;
    }
  }
}

// param := NAME ":" type
std::optional<AstParam> Parser::parse_param() {
  if (!at(TokenKind::Name)) {
    std::string message = "expected a parameter name";
    if (is_keyword(current_.kind)) message += fmt::format("; '{}' is a keyword", current_.text);
    error_at_current(std::move(message));
    return std::nullopt;
  }
  AstParam param;
  Token name = advance();
  param.name = std::string(name.text);
  param.name_range = name.range;
  if (!accept(TokenKind::Colon)) {
    error_at_current(fmt::format("expected ':' and a type after parameter '{}'", param.name));
    return std::nullopt;
  }
  std::optional<AstType> type = parse_type(param.name);
  if (!type) return std::nullopt;
  param.type = std::move(*type);
  return param;
}

// type := elem | elem "[" dim { "," dim } "]"
// elem := "int" | "float" | "bool"
std::optional<AstType> Parser::parse_type(const std::string& param_name) {
  AstType type;
  switch (current_.kind) {
    case TokenKind::KwInt: type.elem = ElemKind::Int; break;
    case TokenKind::KwFloat: type.elem = ElemKind::Float; break;
    case TokenKind::KwBool: type.elem = ElemKind::Bool; break;
    default:
      error_at_current(fmt::format("expected 'int', 'float' or 'bool' as the type of '{}'", param_name));
      return std::nullopt;
  }
  type.range = advance().range;
  if (!accept(TokenKind::LBracket)) return type;
  while (true) {
    std::optional<AstDim> dim = parse_dim(param_name);
    if (!dim) return std::nullopt;
    type.dims.push_back(std::move(*dim));
    if (at(TokenKind::RBracket)) {
      type.range.end = advance().range.end;
      return type;
    }
    if (!accept(TokenKind::Comma)) {
      error_at_current(fmt::format("expected ',' or ']' in the type of '{}'", param_name));
      return std::nullopt;
    }
  }
}

// dim := NAME | INTEGER
std::optional<AstDim> Parser::parse_dim(const std::string& param_name) {
  AstDim dim;
  dim.range = current_.range;
  if (at(TokenKind::Name)) {
    dim.name = std::string(current_.text);
  } else if (at(TokenKind::Integer)) {
    dim.size = current_.int_value;
  } else {
    error_at_current(fmt::format("expected a dimension (a name or an integer) in the type of '{}'", param_name));
    return std::nullopt;
  }
  advance();
  return dim;
}

// body := { "let" NAME "=" expr ";" } expr
// and the ";" that ends the definition. Errors in a `let` recover at its ';' and parsing goes on,
// so one definition can report several errors; the definition is still dropped.
bool Parser::parse_body(AstDefinition& definition) {
  bool ok = true;
  while (at(TokenKind::KwLet)) {
    std::optional<AstLet> let = parse_let();
    if (let) {
      definition.lets.push_back(std::move(*let));
      continue;
    }
    ok = false;
    recover(/*stop_at_let=*/true);
    if (at(TokenKind::End) || at_definition_start()) return false;
  }
  if (!definition.lets.empty() && (at(TokenKind::End) || at_definition_start())) {
    error_after_previous("expected the expression that gives the definition's value after its lets");
    return false;
  }
  definition.body = parse_expr();
  if (!definition.body) {
    recover();
    return false;
  }
  if (!accept(TokenKind::Semicolon)) {
    if (at(TokenKind::Assign)) {
      error_at_current("expected ';' after definition; did you mean '=='?");
    } else {
      error_after_previous("expected ';' after definition");
    }
    recover();
    return false;
  }
  return ok;
}

// "let" NAME "=" expr ";"
std::optional<AstLet> Parser::parse_let() {
  advance();  // let
  if (!at(TokenKind::Name)) {
    std::string message = "expected a name after 'let'";
    if (is_keyword(current_.kind)) message += fmt::format("; '{}' is a keyword", current_.text);
    error_at_current(std::move(message));
    return std::nullopt;
  }
  AstLet let;
  Token name = advance();
  let.name = std::string(name.text);
  let.name_range = name.range;
  if (!accept(TokenKind::Assign)) {
    error_at_current(fmt::format("expected '=' after 'let {}'", let.name));
    return std::nullopt;
  }
  let.value = parse_expr();
  if (!let.value) return std::nullopt;
  if (!accept(TokenKind::Semicolon)) {
    if (at(TokenKind::Assign)) {
      error_at_current(fmt::format("expected ';' after 'let {}'; did you mean '=='?", let.name));
    } else {
      error_after_previous(fmt::format("expected ';' after 'let {}'", let.name));
    }
    return std::nullopt;
  }
  return let;
}

AstExprPtr Parser::make_node(AstKind kind, SourceRange range, SourceRange op_range, std::vector<AstExprPtr> operands) {
  auto node = std::make_unique<AstExpr>();
  node->kind = kind;
  node->range = range;
  node->op_range = op_range;
  for (const AstExprPtr& operand : operands) node->depth = std::max(node->depth, operand->depth + 1);
  node->operands = std::move(operands);
  // Left-associative chains (a + a + ...) grow the tree in a loop, not by recursion, so the depth
  // is checked on every node as well as by NestingScope.
  if (node->depth > kMaxExpressionDepth) {
    error(op_range, too_deep_message());
    return nullptr;
  }
  return node;
}

AstExprPtr Parser::make_leaf(AstKind kind, const Token& token) {
  auto node = std::make_unique<AstExpr>();
  node->kind = kind;
  node->range = token.range;
  node->op_range = token.range;
  return node;
}

// expr := or [ "?" expr ":" expr ]
// Both branches are full expressions, so ?: is right-associative: a ? b : c ? d : e is
// a ? b : (c ? d : e).
AstExprPtr Parser::parse_expr() {
  NestingScope scope(nesting_);
  if (scope.too_deep()) {
    error_at_current(too_deep_message());
    return nullptr;
  }
  AstExprPtr condition = parse_binary(kLoosestBinary);
  if (!condition || !at(TokenKind::Question)) return condition;
  Token question = advance();
  AstExprPtr if_true = parse_expr();
  if (!if_true) return nullptr;
  if (!accept(TokenKind::Colon)) {
    error_at_current("expected ':' in the conditional expression");
    return nullptr;
  }
  AstExprPtr if_false = parse_expr();
  if (!if_false) return nullptr;
  SourceRange range = SourceRange::cover(condition->range, if_false->range);
  std::vector<AstExprPtr> operands;
  operands.push_back(std::move(condition));
  operands.push_back(std::move(if_true));
  operands.push_back(std::move(if_false));
  AstExprPtr node = make_node(AstKind::Conditional, range, question.range, std::move(operands));
  return node;
}

// or  := and { "||" and }
// and := eq { "&&" eq }
// eq  := rel { ( "==" | "!=" ) rel }
// rel := add { ( "<" | "<=" | ">" | ">=" ) add }
// add := mul { ( "+" | "-" ) mul }
// mul := unary { ( "*" | "/" | "%" ) unary }
//
// One function for the six levels (precedence climbing, as in Kaleidoscope): it parses the
// operators of `min_precedence` and tighter, all left-associative, so its recursion is bounded by
// the number of levels.
AstExprPtr Parser::parse_binary(int min_precedence) {
  AstExprPtr lhs = parse_unary();
  if (!lhs) return nullptr;
  while (true) {
    std::optional<BinaryInfo> info = binary_info(current_.kind);
    if (!info || info->precedence < min_precedence) return lhs;
    Token op = advance();
    AstExprPtr rhs = parse_binary(info->precedence + 1);
    if (!rhs) return nullptr;
    SourceRange range = SourceRange::cover(lhs->range, rhs->range);
    std::vector<AstExprPtr> operands;
    operands.push_back(std::move(lhs));
    operands.push_back(std::move(rhs));
    lhs = make_node(AstKind::Binary, range, op.range, std::move(operands));
    if (!lhs) return nullptr;
    lhs->binary_op = info->op;
  }
}

// unary := ( "-" | "!" ) unary | postfix
AstExprPtr Parser::parse_unary() {
  if (!at(TokenKind::Minus) && !at(TokenKind::Bang)) return parse_postfix();
  NestingScope scope(nesting_);
  if (scope.too_deep()) {
    error_at_current(too_deep_message());
    return nullptr;
  }
  Token op = advance();
  AstExprPtr operand = parse_unary();
  if (!operand) return nullptr;
  SourceRange range = SourceRange::cover(op.range, operand->range);
  std::vector<AstExprPtr> operands;
  operands.push_back(std::move(operand));
  AstExprPtr node = make_node(AstKind::Unary, range, op.range, std::move(operands));
  if (node) node->unary_op = op.kind == TokenKind::Minus ? UnaryOp::Neg : UnaryOp::Not;
  return node;
}

// postfix := primary [ "[" expr { "," expr } "]" ]
AstExprPtr Parser::parse_postfix() {
  AstExprPtr base = parse_primary();
  if (!base || !at(TokenKind::LBracket)) return base;
  Token bracket = advance();
  std::vector<AstExprPtr> operands;
  operands.push_back(std::move(base));
  while (true) {
    AstExprPtr index = parse_expr();
    if (!index) return nullptr;
    operands.push_back(std::move(index));
    if (at(TokenKind::RBracket)) break;
    if (!accept(TokenKind::Comma)) {
      error_at_current("expected ',' or ']' after an index");
      return nullptr;
    }
  }
  Token close = advance();
  // t[i][j] is a common slip for t[i, j]; the grammar has one bracket pair per tensor access.
  if (at(TokenKind::LBracket)) {
    error_at_current("a tensor takes all its indices in one pair of brackets: write t[i, j], not t[i][j]");
    return nullptr;
  }
  SourceRange range = SourceRange::cover(operands[0]->range, close.range);
  return make_node(AstKind::Index, range, bracket.range, std::move(operands));
}

// primary := INTEGER | FLOAT | "true" | "false" | "inf" | NAME
//          | NAME "(" [ expr { "," expr } ] ")" | "(" expr ")"
// The conversions float(x) and int(x) are spelt with type keywords, so a type keyword followed by
// '(' is a call too (bool(x) parses and is left for the checker to refuse).
AstExprPtr Parser::parse_primary() {
  switch (current_.kind) {
    case TokenKind::Integer: {
      AstExprPtr node = make_leaf(AstKind::IntLiteral, current_);
      node->int_value = advance().int_value;
      return node;
    }
    case TokenKind::Float: {
      AstExprPtr node = make_leaf(AstKind::FloatLiteral, current_);
      node->float_value = advance().float_value;
      return node;
    }
    case TokenKind::KwTrue:
    case TokenKind::KwFalse: {
      AstExprPtr node = make_leaf(AstKind::BoolLiteral, current_);
      node->bool_value = advance().kind == TokenKind::KwTrue;
      return node;
    }
    case TokenKind::KwInf: return make_leaf(AstKind::Inf, advance());
    case TokenKind::Name: {
      Token name = advance();
      if (at(TokenKind::LParen)) return parse_call(name);
      AstExprPtr node = make_leaf(AstKind::Name, name);
      node->name = std::string(name.text);
      return node;
    }
    case TokenKind::KwInt:
    case TokenKind::KwFloat:
    case TokenKind::KwBool: {
      Token name = advance();
      if (at(TokenKind::LParen)) return parse_call(name);
      error(name.range,
            fmt::format("expected expression; '{}' is a type (write {}(x) to convert)", name.text, name.text));
      return nullptr;
    }
    case TokenKind::LParen: {
      Token open = advance();
      AstExprPtr inner = parse_expr();
      if (!inner) return nullptr;
      if (!at(TokenKind::RParen)) {
        error_at_current("expected ')'");
        return nullptr;
      }
      // The parentheses belong to the expression's range, so a caret under it covers them too.
      inner->range = {open.range.begin, advance().range.end};
      return inner;
    }
    default: error_at_current("expected expression"); return nullptr;
  }
}

// NAME "(" [ expr { "," expr } ] ")"
AstExprPtr Parser::parse_call(const Token& name) {
  advance();  // (
  std::vector<AstExprPtr> operands;
  if (!at(TokenKind::RParen)) {
    while (true) {
      AstExprPtr argument = parse_expr();
      if (!argument) return nullptr;
      operands.push_back(std::move(argument));
      if (at(TokenKind::RParen)) break;
      if (!accept(TokenKind::Comma)) {
        error_at_current(fmt::format("expected ',' or ')' in the call of '{}'", name.text));
        return nullptr;
      }
    }
  }
  Token close = advance();
  AstExprPtr node =
      make_node(AstKind::Call, SourceRange::cover(name.range, close.range), name.range, std::move(operands));
  if (node) node->name = std::string(name.text);
  return node;
}

}  // namespace

AstFile parse_file(std::shared_ptr<const SourceFile> source, DiagnosticEngine& diagnostics) {
  ATTNC_ASSERT(source != nullptr, "parse_file needs a source file");
  ATTNC_ASSERT(diagnostics.file().get() == source.get(),
               "parse_file's DiagnosticEngine must refer to the file being parsed");
  Parser parser(std::move(source), diagnostics);
  return parser.parse_file();
}

}  // namespace attnc::dsl
