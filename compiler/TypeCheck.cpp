#include "compiler/TypeCheck.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "compiler/Limits.h"
#include "dsl/Errors.h"
#include "dsl/Suggest.h"

// How the checker reports and recovers (the contract's rules are in ../shared/spec/mod-language.md):
// - Every check function returns the typed IR of its expression, or null after an error. A null
//   operand never produces a second diagnostic in its parent, so one mistake gives one error, while
//   the sibling operands are still checked and report their own mistakes.
// - A definition with any error is left out of the module. Its name is still remembered, so a later
//   definition that calls it is silently left out too instead of reporting a misleading
//   "unknown name" (the user has one real mistake to fix, already reported).
// - ModCall operands: a mask mod's call passes one operand per callee parameter; a score mod's call
//   passes the score (Float) first, then one per parameter. Tensor parameters are passed as
//   TensorRef nodes of the caller's own tensor parameters.

namespace attnc::ir {

namespace {

using dsl::AstDefinition;
using dsl::AstExpr;
using dsl::AstKind;
using dsl::BinaryOp;
using dsl::DiagnosticEngine;
using dsl::ElemKind;
using dsl::SourceRange;
using dsl::UnaryOp;

// ---- The built-in functions. ----

enum class FunctionClass {
  Abs,      // abs(x): keeps int
  MinMax,   // min/max(x, y): promoted, keeps int when both are int
  Clamp,    // clamp(x, lo, hi) = min(max(x, lo), hi)
  Where,    // where(c, a, b) = c ? a : b
  Math,     // exp .. round, pow: float in, float out
  ToFloat,  // float(x)
  ToInt,    // int(x)
};

struct FunctionInfo {
  std::string_view name;
  int arity;
  FunctionClass cls;
  Op op;
};

constexpr FunctionInfo kFunctions[] = {
    {"abs", 1, FunctionClass::Abs, Op::Abs},          {"min", 2, FunctionClass::MinMax, Op::Min},
    {"max", 2, FunctionClass::MinMax, Op::Max},       {"clamp", 3, FunctionClass::Clamp, Op::None},
    {"where", 3, FunctionClass::Where, Op::None},     {"exp", 1, FunctionClass::Math, Op::Exp},
    {"exp2", 1, FunctionClass::Math, Op::Exp2},       {"log", 1, FunctionClass::Math, Op::Log},
    {"log2", 1, FunctionClass::Math, Op::Log2},       {"sqrt", 1, FunctionClass::Math, Op::Sqrt},
    {"rsqrt", 1, FunctionClass::Math, Op::Rsqrt},     {"tanh", 1, FunctionClass::Math, Op::Tanh},
    {"sigmoid", 1, FunctionClass::Math, Op::Sigmoid}, {"sin", 1, FunctionClass::Math, Op::Sin},
    {"cos", 1, FunctionClass::Math, Op::Cos},         {"floor", 1, FunctionClass::Math, Op::Floor},
    {"ceil", 1, FunctionClass::Math, Op::Ceil},       {"round", 1, FunctionClass::Math, Op::Round},
    {"pow", 2, FunctionClass::Math, Op::Pow},         {"float", 1, FunctionClass::ToFloat, Op::None},
    {"int", 1, FunctionClass::ToInt, Op::None},
};

const FunctionInfo* find_function(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Words the lexer reserves; the parser never gives them as names, but the checker does not rely on it.
constexpr std::string_view kKeywords[] = {"score_mod", "mask_mod", "let",   "int", "float",
                                          "bool",      "true",     "false", "inf"};

bool is_keyword(std::string_view name) {
  for (std::string_view k : kKeywords) {
    if (k == name) return true;
  }
  return false;
}

// The built-in variables a user may name (the Tile* ones exist only in tile-classifier IR).
constexpr Builtin kUserBuiltins[] = {Builtin::Score, Builtin::Batch,    Builtin::Head,
                                     Builtin::QIdx,  Builtin::KvIdx,    Builtin::QLen,
                                     Builtin::KvLen, Builtin::NumHeads, Builtin::NumKvHeads};

std::optional<Builtin> find_builtin(std::string_view name) {
  for (Builtin b : kUserBuiltins) {
    if (builtin_spelling(b) == name) return b;
  }
  return std::nullopt;
}

Type elem_type(ElemKind kind) {
  switch (kind) {
    case ElemKind::Int: return Type::Int;
    case ElemKind::Float: return Type::Float;
    case ElemKind::Bool: return Type::Bool;
  }
  return Type::Int;
}

bool is_number(Type t) { return t == Type::Int || t == Type::Float; }

// "an int tensor of rank 2"
std::string describe_tensor(Type elem, size_t rank) {
  return fmt::format("{} {} tensor of rank {}", elem == Type::Int ? "an" : "a", type_name(elem), rank);
}

std::string plural(size_t n, const char* one, const char* many) { return fmt::format("{} {}", n, n == 1 ? one : many); }

// Float literals at or above FLT_MAX + half an ulp round to infinity in binary32.
constexpr double kFloatOverflow = 0x1.ffffffp127;

// Errors the checker reports for one file before it stops reporting (it still checks the rest, so
// the module stays correct). With the cap, a huge broken file cannot cost time quadratic in its size
// through "did you mean" searches over thousands of candidates.
constexpr size_t kMaxCheckErrors = 100;

// What the whole file has seen so far: checked definitions and the names of failed ones.
struct FileScope {
  Module module;
  std::map<std::string, uint32_t> def_index;     // name -> index into module.defs
  std::map<std::string, SourceRange> failed;     // definitions left out because of errors
  std::map<std::string, SourceRange> defined;    // every definition name taken so far, for redefinitions
  std::vector<std::string> def_names;            // in source order, for suggestions
  std::map<std::string, SourceRange> all_names;  // first definition of each name in the whole file
  size_t errors = 0;                             // reported by the checker so far
  bool gave_up = false;                          // the cap was reached and said so

  std::optional<uint32_t> find_def(const std::string& name) const {
    auto found = def_index.find(name);
    if (found == def_index.end()) return std::nullopt;
    return found->second;
  }

  // Reports an error unless the cap is reached; returns whether it was reported.
  bool report(dsl::DiagnosticEngine& diagnostics, SourceRange range, std::string message) {
    if (errors >= kMaxCheckErrors) {
      if (!gave_up) diagnostics.note(range, "too many errors; the rest of the file is checked silently");
      gave_up = true;
      return false;
    }
    ++errors;
    diagnostics.error(range, std::move(message));
    return true;
  }
};

// A name declared by the definition itself.
struct Local {
  enum class What { Scalar, Tensor, Extent, Let } what = What::Scalar;
  Expr value;          // Scalar, Extent, Let (null when a let failed to check)
  uint32_t param = 0;  // Tensor
  Type elem = Type::Int;
  size_t rank = 0;
};

const char* describe_local(Local::What what) {
  switch (what) {
    case Local::What::Scalar:
    case Local::What::Tensor: return "a parameter";
    case Local::What::Extent: return "an extent";
    case Local::What::Let: return "a let";
  }
  return "a name";
}

class DefinitionChecker {
 public:
  DefinitionChecker(const AstDefinition& ast, FileScope& file, DiagnosticEngine& diagnostics)
      : ast_(ast), file_(file), diagnostics_(diagnostics) {}

  // The checked definition, or nullopt when it had errors (all of them reported).
  std::optional<ModDef> check(bool name_ok) {
    ModDef def;
    def.name = ast_.name;
    def.kind = ast_.kind;
    def.range = ast_.range;
    failed_ = !name_ok;
    declare_params(def);
    for (const dsl::AstLet& let : ast_.lets) {
      Expr value = let.value ? check_value(*let.value) : poison();
      Local local;
      local.what = Local::What::Let;
      local.value = value;
      declare(let.name, let.name_range, std::move(local));
    }
    ATTNC_ASSERT(ast_.body != nullptr, "the parser gave a definition without a body");
    Expr body = check_value(*ast_.body);
    if (body) {
      if (ast_.kind == dsl::ModKind::Score) {
        if (body->type == Type::Bool) {
          body = error(ast_.body->range, "a score mod's body must be float, not bool");
        } else {
          body = make_cast(Type::Float, body);
        }
      } else if (body->type != Type::Bool) {
        body = error(ast_.body->range, fmt::format("a mask mod's body must be bool, not {}", type_name(body->type)));
      }
    }
    if (failed_ || !body) return std::nullopt;
    def.body = std::move(body);
    return def;
  }

 private:
  // ---- Declarations. ----

  void declare_params(ModDef& def) {
    std::map<std::string, std::pair<uint32_t, uint32_t>> first_extent;
    for (uint32_t p = 0; p < ast_.params.size(); ++p) {
      const dsl::AstParam& ast_param = ast_.params[p];
      ParamDecl decl;
      decl.name = ast_param.name;
      decl.elem = elem_type(ast_param.type.elem);
      Local local;
      if (ast_param.type.dims.empty()) {
        local.what = Local::What::Scalar;
        local.value = make_param(p, decl.elem);
      } else {
        local.what = Local::What::Tensor;
        local.param = p;
        local.elem = decl.elem;
        local.rank = ast_param.type.dims.size();
      }
      declare(ast_param.name, ast_param.name_range, std::move(local));
      if (ast_param.type.dims.size() > kMaxTensorRank) {
        error(SourceRange::cover(ast_param.name_range, ast_param.type.range),
              fmt::format("tensor '{}' has {} dimensions; a tensor parameter has at most {}", ast_param.name,
                          ast_param.type.dims.size(), kMaxTensorRank));
      }
      for (uint32_t d = 0; d < ast_param.type.dims.size(); ++d) {
        const dsl::AstDim& ast_dim = ast_param.type.dims[d];
        TensorDim dim;
        dim.first_param = p;
        dim.first_dim = d;
        if (ast_dim.name.empty()) {
          if (ast_dim.size == 0) {
            error(ast_dim.range, "a tensor extent must be at least 1");
          } else if (ast_dim.size > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
            error(ast_dim.range, "tensor extent out of range");
          } else {
            dim.size = static_cast<int64_t>(ast_dim.size);
          }
        } else {
          dim.name = ast_dim.name;
          auto first = first_extent.find(ast_dim.name);
          if (first != first_extent.end()) {
            // The same extent again: it stands for its first occurrence.
            dim.first_param = first->second.first;
            dim.first_dim = first->second.second;
          } else {
            first_extent.emplace(ast_dim.name, std::pair(p, d));
            Local extent;
            extent.what = Local::What::Extent;
            extent.value = make_extent(p, d);
            declare(ast_dim.name, ast_dim.range, std::move(extent));
          }
        }
        decl.dims.push_back(std::move(dim));
      }
      def.params.push_back(std::move(decl));
    }
  }

  // Binds a parameter, extent or let name, reporting any name it would shadow. A name that shadows
  // something outside the definition is still bound so that its uses do not cascade into more errors.
  void declare(const std::string& name, SourceRange range, Local local) {
    auto existing = locals_.find(name);
    if (existing != locals_.end()) {
      error(range, fmt::format("'{}' is already declared as {}", name, describe_local(existing->second.what)));
      return;
    }
    if (is_keyword(name)) {
      error(range, fmt::format("'{}' is a keyword", name));
    } else if (find_builtin(name)) {
      error(range, fmt::format("'{}' shadows a built-in name", name));
    } else if (find_function(name)) {
      error(range, fmt::format("'{}' shadows a function", name));
    } else if (file_.defined.count(name)) {
      error(range, fmt::format("'{}' shadows an earlier definition", name));
    }
    locals_.emplace(name, std::move(local));
    local_order_.push_back(name);
  }

  // ---- Diagnostics. ----

  std::nullptr_t error(SourceRange range, std::string message) {
    file_.report(diagnostics_, range, std::move(message));
    failed_ = true;
    return nullptr;
  }

  // An operand that depends on an error already reported elsewhere.
  std::nullptr_t poison() {
    failed_ = true;
    return nullptr;
  }

  std::nullptr_t unknown_name(const AstExpr& e) {
    // Past the cap the error is not shown, so the search for a suggestion is skipped.
    if (file_.errors >= kMaxCheckErrors) return error(e.op_range, fmt::format("unknown name '{}'", e.name));
    std::vector<std::string> candidates;
    for (Builtin b : kUserBuiltins) {
      if (b != Builtin::Score || ast_.kind == dsl::ModKind::Score) candidates.emplace_back(builtin_spelling(b));
    }
    for (const std::string& name : local_order_) candidates.push_back(name);
    for (const std::string& name : file_.def_names) candidates.push_back(name);
    for (const FunctionInfo& f : kFunctions) candidates.emplace_back(f.name);
    std::string message = fmt::format("unknown name '{}'", e.name);
    if (std::optional<std::string> suggestion = dsl::suggest_name(e.name, candidates)) {
      message += fmt::format("; did you mean '{}'?", *suggestion);
    }
    if (!file_.report(diagnostics_, e.op_range, std::move(message))) return poison();
    failed_ = true;
    // A definition can see only the ones before it; say so when the name is this one or a later one.
    if (e.name == ast_.name) {
      diagnostics_.note(ast_.name_range, "a definition cannot call itself");
    } else if (auto later = file_.all_names.find(e.name); later != file_.all_names.end()) {
      diagnostics_.note(later->second,
                        fmt::format("'{}' is defined later; only earlier definitions can be used", e.name));
    }
    return nullptr;
  }

  // ---- Expressions. ----

  // A bool, int or float expression (never a tensor). Null after an error.
  Expr check_value(const AstExpr& e) {
    // The parser bounds the depth already; this keeps the checker safe on its own.
    if (depth_ >= dsl::kMaxExpressionDepth + 8) return error(e.range, "expression nested too deeply");
    ++depth_;
    Expr result = check_value_at_depth(e);
    --depth_;
    return result;
  }

  Expr check_value_at_depth(const AstExpr& e) {
    switch (e.kind) {
      case AstKind::IntLiteral: return check_int_literal(e, false);
      case AstKind::FloatLiteral: return check_float_literal(e, false);
      case AstKind::BoolLiteral: return make_bool(e.bool_value);
      case AstKind::Inf: return make_float(std::numeric_limits<float>::infinity());
      case AstKind::Name: return check_name(e);
      case AstKind::Call: return check_call(e);
      case AstKind::Index: return check_index(e);
      case AstKind::Unary: return check_unary(e);
      case AstKind::Binary: return check_binary(e);
      case AstKind::Conditional: return check_conditional(e);
    }
    ATTNC_ASSERT(false, "unknown syntax node kind");
    return nullptr;
  }

  const AstExpr& operand(const AstExpr& e, size_t i) {
    ATTNC_ASSERT(i < e.operands.size() && e.operands[i] != nullptr, "syntax node is missing an operand");
    return *e.operands[i];
  }

  // Literals are checked together with a minus directly in front of them, so that -2147483648 is
  // the smallest int rather than an out-of-range 2147483648 negated.
  Expr check_int_literal(const AstExpr& e, bool negated) {
    uint64_t limit = negated ? 2147483648ull : 2147483647ull;
    if (e.int_value > limit) return error(e.range, "integer literal out of range");
    int64_t value = static_cast<int64_t>(e.int_value);
    return make_int(static_cast<int32_t>(negated ? -value : value));
  }

  Expr check_float_literal(const AstExpr& e, bool negated) {
    if (!(std::fabs(e.float_value) < kFloatOverflow)) return error(e.range, "float literal out of range");
    float value = static_cast<float>(e.float_value);
    return make_float(negated ? -value : value);
  }

  Expr check_name(const AstExpr& e) {
    auto local = locals_.find(e.name);
    if (local != locals_.end()) {
      if (local->second.what == Local::What::Tensor) {
        return error(e.range, fmt::format("'{}' is a tensor; index it as {}[...]", e.name, e.name));
      }
      return local->second.value ? local->second.value : poison();
    }
    if (std::optional<Builtin> builtin = find_builtin(e.name)) {
      if (*builtin == Builtin::Score && ast_.kind != dsl::ModKind::Score) {
        return error(e.range, "'score' is only available in score mods");
      }
      return make_builtin(*builtin);
    }
    if (std::optional<uint32_t> index = file_.find_def(e.name)) {
      const ModDef& callee = file_.module.defs[*index];
      if (callee.kind == dsl::ModKind::Score) {
        return error(e.range, fmt::format("'{}' is a score mod; call it as {}({})", e.name, e.name,
                                          callee.params.empty() ? "score" : "score, ..."));
      }
      if (!callee.params.empty()) {
        return error(e.range, fmt::format("'{}' takes {}, got 0", e.name,
                                          plural(callee.params.size(), "argument", "arguments")));
      }
      return make_mod_call(*index, Type::Bool, {});
    }
    if (file_.failed.count(e.name)) return poison();
    if (find_function(e.name))
      return error(e.range, fmt::format("'{}' is a function; call it as {}(...)", e.name, e.name));
    return unknown_name(e);
  }

  Expr check_unary(const AstExpr& e) {
    const AstExpr& x = operand(e, 0);
    if (e.unary_op == UnaryOp::Neg) {
      if (x.kind == AstKind::IntLiteral) return check_int_literal(x, true);
      if (x.kind == AstKind::FloatLiteral) return check_float_literal(x, true);
      if (x.kind == AstKind::Inf) return make_float(-std::numeric_limits<float>::infinity());
      Expr value = check_value(x);
      if (!value) return nullptr;
      if (!is_number(value->type)) return error(x.range, "'-' needs an int or float operand, not bool");
      return make_unary(Op::Neg, value);
    }
    Expr value = check_value(x);
    if (!value) return nullptr;
    if (value->type != Type::Bool) {
      return error(x.range, fmt::format("'!' needs a bool operand, not {}", type_name(value->type)));
    }
    return make_unary(Op::Not, value);
  }

  static Op binary_op(BinaryOp op) {
    switch (op) {
      case BinaryOp::Or: return Op::Or;
      case BinaryOp::And: return Op::And;
      case BinaryOp::Eq: return Op::Eq;
      case BinaryOp::Ne: return Op::Ne;
      case BinaryOp::Lt: return Op::Lt;
      case BinaryOp::Le: return Op::Le;
      case BinaryOp::Gt: return Op::Gt;
      case BinaryOp::Ge: return Op::Ge;
      case BinaryOp::Add: return Op::Add;
      case BinaryOp::Sub: return Op::Sub;
      case BinaryOp::Mul: return Op::Mul;
      case BinaryOp::Div: return Op::Div;
      case BinaryOp::Mod: return Op::Mod;
    }
    return Op::None;
  }

  // A literal zero written as the divisor (0 or -0, in any parentheses the parser drops).
  static bool is_literal_zero(const AstExpr& e) {
    if (e.kind == AstKind::IntLiteral) return e.int_value == 0;
    if (e.kind == AstKind::Unary && e.unary_op == UnaryOp::Neg && e.operands.size() == 1 && e.operands[0]) {
      return e.operands[0]->kind == AstKind::IntLiteral && e.operands[0]->int_value == 0;
    }
    return false;
  }

  // Converts numbers to their common type: float when any is float, else int.
  static void promote(std::vector<Expr>& values) {
    bool any_float = false;
    for (const Expr& v : values) any_float = any_float || v->type == Type::Float;
    if (!any_float) return;
    for (Expr& v : values) v = make_cast(Type::Float, v);
  }

  Expr check_binary(const AstExpr& e) {
    const AstExpr& lhs_ast = operand(e, 0);
    const AstExpr& rhs_ast = operand(e, 1);
    Expr lhs = check_value(lhs_ast);
    Expr rhs = check_value(rhs_ast);
    if (!lhs || !rhs) return nullptr;
    Op op = binary_op(e.binary_op);
    const char* spelled = dsl::spelling(e.binary_op);
    if (op == Op::And || op == Op::Or) {
      for (const auto& [value, ast] : {std::pair(&lhs, &lhs_ast), std::pair(&rhs, &rhs_ast)}) {
        if ((*value)->type != Type::Bool) {
          return error(ast->range, fmt::format("'{}' needs bool operands, not {}", spelled, type_name((*value)->type)));
        }
      }
      return make_binary(op, lhs, rhs);
    }
    if (op == Op::Eq || op == Op::Ne) {
      bool lhs_bool = lhs->type == Type::Bool;
      if (lhs_bool != (rhs->type == Type::Bool)) {
        return error(e.op_range, fmt::format("'{}' cannot compare {} with {}", spelled, type_name(lhs->type),
                                             type_name(rhs->type)));
      }
      if (lhs_bool) return make_binary(op, lhs, rhs);
    } else {
      // Arithmetic and ordering take numbers only.
      for (const auto& [value, ast] : {std::pair(&lhs, &lhs_ast), std::pair(&rhs, &rhs_ast)}) {
        if ((*value)->type == Type::Bool) {
          return error(ast->range, fmt::format("'{}' needs int or float operands, not bool", spelled));
        }
      }
    }
    std::vector<Expr> operands = {lhs, rhs};
    promote(operands);
    if ((op == Op::Div || op == Op::Mod) && operands[1]->type == Type::Int && is_literal_zero(rhs_ast)) {
      return error(rhs_ast.range, "division by literal zero");
    }
    return make_binary(op, operands[0], operands[1]);
  }

  // `c ? a : b` and where(c, a, b): a bool condition, and arms that are both bool or both numbers.
  Expr select(const std::string& what, SourceRange at, const AstExpr& cond_ast, Expr cond, Expr if_true,
              Expr if_false) {
    if (!cond || !if_true || !if_false) return nullptr;
    if (cond->type != Type::Bool) {
      return error(cond_ast.range,
                   fmt::format("the condition of {} must be bool, not {}", what, type_name(cond->type)));
    }
    if ((if_true->type == Type::Bool) != (if_false->type == Type::Bool)) {
      return error(at, fmt::format("the branches of {} must both be bool or both be numbers, got {} and {}", what,
                                   type_name(if_true->type), type_name(if_false->type)));
    }
    std::vector<Expr> arms = {if_true, if_false};
    promote(arms);
    return make_select(cond, arms[0], arms[1]);
  }

  Expr check_conditional(const AstExpr& e) {
    const AstExpr& cond_ast = operand(e, 0);
    Expr cond = check_value(cond_ast);
    Expr if_true = check_value(operand(e, 1));
    Expr if_false = check_value(operand(e, 2));
    return select("'?:'", e.op_range, cond_ast, cond, if_true, if_false);
  }

  // ---- Tensor indexing. ----

  Expr check_index(const AstExpr& e) {
    ATTNC_ASSERT(!e.operands.empty(), "an index node needs its tensor");
    // The indexed name first, then the indices, so that diagnostics come in source order.
    const AstExpr& base = operand(e, 0);
    const Local* tensor = nullptr;
    bool base_ok = false;
    if (base.kind != AstKind::Name) {
      if (check_value(base)) error(base.range, "only tensor parameters can be indexed");
    } else if (auto local = locals_.find(base.name);
               local != locals_.end() && local->second.what == Local::What::Tensor) {
      tensor = &local->second;
      base_ok = true;
    } else if (check_name(base)) {
      error(base.range, fmt::format("'{}' is not a tensor and cannot be indexed", base.name));
    }
    std::vector<Expr> indices;
    bool indices_ok = true;
    for (size_t i = 1; i < e.operands.size(); ++i) {
      const AstExpr& index_ast = operand(e, i);
      Expr index = check_value(index_ast);
      if (index && index->type != Type::Int) {
        index = error(index_ast.range, fmt::format("a tensor index must be int, not {}", type_name(index->type)));
      }
      indices_ok = indices_ok && index != nullptr;
      indices.push_back(std::move(index));
    }
    if (!base_ok) return poison();
    if (indices.size() != tensor->rank) {
      return error(e.range, fmt::format("tensor '{}' takes {}, got {}", base.name,
                                        plural(tensor->rank, "index", "indices"), indices.size()));
    }
    if (!indices_ok) return nullptr;
    return make_load(tensor->param, tensor->elem, std::move(indices));
  }

  // ---- Calls. ----

  // Checks call arguments whose role is unknown (the callee is unknown or wrong), for the mistakes
  // inside them; a bare tensor name is accepted since it might have been meant for a mod call.
  void check_loose_arguments(const AstExpr& e) {
    for (const auto& arg : e.operands) {
      if (!arg) continue;
      if (arg->kind == AstKind::Name) {
        auto local = locals_.find(arg->name);
        if (local != locals_.end() && local->second.what == Local::What::Tensor) continue;
      }
      check_value(*arg);
    }
  }

  Expr check_call(const AstExpr& e) {
    if (const FunctionInfo* function = find_function(e.name)) return check_function(e, *function);
    if (std::optional<uint32_t> index = file_.find_def(e.name)) return check_mod_call(e, *index);
    if (file_.failed.count(e.name)) {
      check_loose_arguments(e);
      return poison();
    }
    if (locals_.count(e.name) || find_builtin(e.name)) {
      check_loose_arguments(e);
      return error(e.op_range, fmt::format("'{}' is not a function", e.name));
    }
    check_loose_arguments(e);
    return unknown_name(e);
  }

  Expr check_function(const AstExpr& e, const FunctionInfo& function) {
    std::vector<Expr> args;
    bool ok = true;
    for (size_t i = 0; i < e.operands.size(); ++i) {
      args.push_back(check_value(operand(e, i)));
      ok = ok && args.back() != nullptr;
    }
    if (static_cast<int>(args.size()) != function.arity) {
      return error(e.range, fmt::format("'{}' takes {}, got {}", function.name,
                                        plural(function.arity, "argument", "arguments"), args.size()));
    }
    if (!ok) return nullptr;
    switch (function.cls) {
      case FunctionClass::ToFloat: return make_cast(Type::Float, args[0]);
      case FunctionClass::ToInt: return make_cast(Type::Int, args[0]);
      case FunctionClass::Where: return select("'where'", e.range, operand(e, 0), args[0], args[1], args[2]);
      default: break;
    }
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i]->type == Type::Bool) {
        return error(operand(e, i).range, fmt::format("'{}' needs int or float arguments, not bool", function.name));
      }
    }
    switch (function.cls) {
      case FunctionClass::Abs: return make_call(Op::Abs, args);
      case FunctionClass::MinMax: promote(args); return make_binary(function.op, args[0], args[1]);
      case FunctionClass::Clamp:
        promote(args);
        return make_binary(Op::Min, make_binary(Op::Max, args[0], args[1]), args[2]);
      case FunctionClass::Math:
        for (Expr& arg : args) arg = make_cast(Type::Float, arg);
        return make_call(function.op, args);
      default: break;
    }
    ATTNC_ASSERT(false, "unhandled function class");
    return nullptr;
  }

  // A call of an earlier definition: mask mods take their parameters, score mods the score first.
  Expr check_mod_call(const AstExpr& e, uint32_t index) {
    const ModDef& callee = file_.module.defs[index];
    bool is_score = callee.kind == dsl::ModKind::Score;
    size_t leading = is_score ? 1 : 0;
    size_t expected = leading + callee.params.size();
    if (e.operands.size() != expected) {
      check_loose_arguments(e);
      std::string message =
          fmt::format("'{}' takes {}, got {}", e.name, plural(expected, "argument", "arguments"), e.operands.size());
      if (is_score) message += " (the score first)";
      return error(e.range, std::move(message));
    }
    std::vector<Expr> args;
    bool ok = true;
    if (is_score) {
      const AstExpr& score_ast = operand(e, 0);
      Expr score = check_value(score_ast);
      if (score && score->type == Type::Bool) {
        score =
            error(score_ast.range, fmt::format("the score argument of '{}' must be int or float, not bool", e.name));
      }
      ok = ok && score != nullptr;
      args.push_back(score ? make_cast(Type::Float, score) : nullptr);
    }
    for (size_t p = 0; p < callee.params.size(); ++p) {
      Expr arg = check_mod_argument(e, callee.params[p], operand(e, leading + p));
      ok = ok && arg != nullptr;
      args.push_back(std::move(arg));
    }
    if (!ok) return nullptr;
    return make_mod_call(index, is_score ? Type::Float : Type::Bool, std::move(args));
  }

  Expr check_mod_argument(const AstExpr& call, const ParamDecl& param, const AstExpr& arg) {
    if (param.is_tensor()) {
      std::string wanted = describe_tensor(param.elem, param.rank());
      if (arg.kind == AstKind::Name) {
        auto local = locals_.find(arg.name);
        if (local != locals_.end() && local->second.what == Local::What::Tensor) {
          const Local& tensor = local->second;
          if (tensor.elem != param.elem || tensor.rank != param.rank()) {
            return error(arg.range, fmt::format("argument '{}' of '{}' must be {}, got {}", param.name, call.name,
                                                wanted, describe_tensor(tensor.elem, tensor.rank)));
          }
          return make_tensor_ref(tensor.param, tensor.elem);
        }
      }
      if (!check_value(arg)) return nullptr;
      return error(arg.range, fmt::format("argument '{}' of '{}' must name a tensor parameter: {}", param.name,
                                          call.name, wanted));
    }
    Expr value = check_value(arg);
    if (!value) return nullptr;
    bool fits = value->type == param.elem || (param.elem == Type::Float && value->type == Type::Int);
    if (!fits) {
      return error(arg.range, fmt::format("argument '{}' of '{}' must be {}, not {}", param.name, call.name,
                                          type_name(param.elem), type_name(value->type)));
    }
    return make_cast(param.elem, value);
  }

  const AstDefinition& ast_;
  FileScope& file_;
  DiagnosticEngine& diagnostics_;
  std::map<std::string, Local> locals_;
  std::vector<std::string> local_order_;  // declaration order, for suggestions
  uint32_t depth_ = 0;
  bool failed_ = false;
};

}  // namespace

Module check_module(const dsl::AstFile& file, dsl::DiagnosticEngine& diagnostics) {
  FileScope scope;
  scope.module.source = file.source;
  for (const AstDefinition& ast : file.definitions) scope.all_names.emplace(ast.name, ast.name_range);
  for (const AstDefinition& ast : file.definitions) {
    // A definition's name must not hide anything a body could mean by it.
    bool name_ok = true;
    bool reported = false;
    auto report = [&](std::string message) {
      reported = scope.report(diagnostics, ast.name_range, std::move(message));
      name_ok = false;
    };
    auto previous = scope.defined.find(ast.name);
    if (is_keyword(ast.name)) {
      report(fmt::format("'{}' is a keyword", ast.name));
    } else if (find_builtin(ast.name)) {
      report(fmt::format("definition '{}' shadows a built-in name", ast.name));
    } else if (find_function(ast.name)) {
      report(fmt::format("definition '{}' shadows a function", ast.name));
    } else if (previous != scope.defined.end()) {
      report(fmt::format("redefinition of '{}'", ast.name));
      if (reported) diagnostics.note(previous->second, fmt::format("'{}' was first defined here", ast.name));
    }
    DefinitionChecker checker(ast, scope, diagnostics);
    std::optional<ModDef> def = checker.check(name_ok);
    if (!name_ok) continue;  // the name stays unbound: the earlier meaning wins
    scope.defined.emplace(ast.name, ast.name_range);
    scope.def_names.push_back(ast.name);
    if (def) {
      scope.def_index.emplace(ast.name, static_cast<uint32_t>(scope.module.defs.size()));
      scope.module.defs.push_back(std::move(*def));
    } else {
      scope.failed.emplace(ast.name, ast.name_range);
    }
  }
  return std::move(scope.module);
}

}  // namespace attnc::ir
