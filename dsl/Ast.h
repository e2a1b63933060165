#pragma once
// The syntax tree of a mod file, exactly as written: no types, no name resolution, no promotion.
// The compiler's type checker (compiler/TypeCheck.h) turns it into the typed IR. Every node keeps
// its SourceRange for diagnostics.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsl/Source.h"

namespace attnc::dsl {

enum class ModKind { Score, Mask };

enum class ElemKind { Int, Float, Bool };

enum class UnaryOp { Neg, Not };

enum class BinaryOp { Or, And, Eq, Ne, Lt, Le, Gt, Ge, Add, Sub, Mul, Div, Mod };

// The operator's spelling in source ("&&", "<=", ...).
const char* spelling(UnaryOp op);
const char* spelling(BinaryOp op);
const char* spelling(ElemKind kind);
const char* spelling(ModKind kind);  // "score_mod" / "mask_mod"

enum class AstKind {
  IntLiteral,    // int_value (non-negative; "-" is a Unary node)
  FloatLiteral,  // float_value
  BoolLiteral,   // bool_value
  Inf,           // the keyword inf
  Name,          // name
  Call,          // name(operands...)
  Index,         // operands[0] [ operands[1..] ]
  Unary,         // unary_op operands[0]
  Binary,        // operands[0] binary_op operands[1]
  Conditional,   // operands[0] ? operands[1] : operands[2]
};

struct AstExpr {
  AstKind kind = AstKind::IntLiteral;
  SourceRange range;     // the whole expression
  SourceRange op_range;  // the operator token, or the name of a Name/Call
  std::string name;      // Name, Call
  uint64_t int_value = 0;  // IntLiteral, as written (may exceed the int range; the checker says so)
  double float_value = 0;
  bool bool_value = false;
  UnaryOp unary_op = UnaryOp::Neg;
  BinaryOp binary_op = BinaryOp::Add;
  std::vector<std::unique_ptr<AstExpr>> operands;
  // 1 + the deepest operand's depth. The parser refuses trees deeper than kMaxExpressionDepth so
  // that every later recursive walk over them is bounded.
  uint32_t depth = 1;
};

constexpr uint32_t kMaxExpressionDepth = 256;

using AstExprPtr = std::unique_ptr<AstExpr>;

// One dimension of a tensor parameter's type: a NAME (which binds that extent) or an INTEGER.
struct AstDim {
  std::string name;   // empty for a literal extent
  uint64_t size = 0;  // the literal extent
  SourceRange range;
};

struct AstType {
  ElemKind elem = ElemKind::Int;
  std::vector<AstDim> dims;  // empty for a scalar
  SourceRange range;
};

struct AstParam {
  std::string name;
  SourceRange name_range;
  AstType type;
};

struct AstLet {
  std::string name;
  SourceRange name_range;
  AstExprPtr value;
};

struct AstDefinition {
  ModKind kind = ModKind::Mask;
  std::string name;
  SourceRange name_range;
  SourceRange range;  // from the keyword to the closing ';'
  std::vector<AstParam> params;
  std::vector<AstLet> lets;
  AstExprPtr body;
};

// The definitions that parsed cleanly; the parser reports the others and skips to the next ';'.
struct AstFile {
  std::shared_ptr<const SourceFile> source;
  std::vector<AstDefinition> definitions;
};

}  // namespace attnc::dsl
