#include "compiler/Printer.h"

#include <cmath>
#include <unordered_map>
#include <variant>

#include <fmt/format.h>

#include "compiler/IRMutator.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

bool is_leaf(const Node& node) {
  switch (node.kind) {
    case Kind::Const:
    case Kind::Builtin:
    case Kind::Param:
    case Kind::Extent:
    case Kind::TensorRef: return true;
    default: return false;
  }
}

// Shortest text that reads back as the same binary32 value, always recognisable as a float
// ("1.0", "1e-07", "inf"). Every NaN prints as "nan": no operation distinguishes NaN payloads.
std::string format_float(float value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

std::string format_const(const Node& node) {
  switch (node.type) {
    case Type::Bool: return node.int_value ? "true" : "false";
    case Type::Int: return std::to_string(node.int_value);
    case Type::Int64: return std::to_string(node.int_value) + "L";
    case Type::Float: return format_float(node.float_value);
  }
  return "?";
}

// Prints one expression: shared non-leaf nodes become temporaries `tN` (numbered in post-order),
// everything else is written inline. Writing uses an explicit stack of pending pieces, so deep
// expressions neither overflow the call stack nor cost quadratic time.
class ExprPrinter {
 public:
  ExprPrinter(const ModDef* context, PrintStyle style) : context_(context), style_(style) {}

  // Appends one `<indent>tN = ...` line per temporary to `out` and returns the root's text.
  std::string print(const Expr& root, std::string_view indent, std::string& out) {
    ATTNC_ASSERT(root != nullptr, "printing a null expression");
    std::vector<const Node*> order;
    std::unordered_map<const Node*, uint32_t> uses;  // lookup only: output order comes from `order`
    for_each_node(root, [&](const Expr& node) {
      order.push_back(node.get());
      for (const Expr& operand : node->operands) ++uses[operand.get()];
    });
    for (const Node* node : order) {
      if (!is_leaf(*node) && uses[node] > 1) temp_ids_.emplace(node, static_cast<uint32_t>(temp_ids_.size()));
    }
    for (const Node* node : order) {
      auto it = temp_ids_.find(node);
      if (it == temp_ids_.end()) continue;
      out += indent;
      out += fmt::format("t{} = ", it->second);
      write(node, out);
      out += '\n';
    }
    std::string text;
    write(root.get(), text);
    return text;
  }

 private:
  // A pending piece of output: literal text, or a node to write (inline or by its temporary's name).
  struct Piece {
    std::string text;
    const Node* node = nullptr;
  };

  std::string param_name(uint32_t index) const {
    if (style_ == PrintStyle::Readable && context_ != nullptr && index < context_->params.size()) {
      return context_->params[index].name;
    }
    return fmt::format("${}", index);
  }

  std::string extent_name(uint32_t param, uint32_t dim) const {
    if (style_ == PrintStyle::Readable && context_ != nullptr && param < context_->params.size()) {
      const ParamDecl& decl = context_->params[param];
      if (dim < decl.dims.size() && !decl.dims[dim].name.empty()) return decl.dims[dim].name;
    }
    return fmt::format("{}.dim{}", param_name(param), dim);
  }

  // Writes `subject` itself (never as its own temporary name); its operands may be temporaries.
  void write(const Node* subject, std::string& out) {
    std::vector<Piece> stack;
    stack.push_back({"", subject});
    std::vector<Piece> pieces;
    while (!stack.empty()) {
      Piece piece = std::move(stack.back());
      stack.pop_back();
      if (piece.node == nullptr) {
        out += piece.text;
        continue;
      }
      const Node& node = *piece.node;
      if (piece.node != subject) {
        auto it = temp_ids_.find(piece.node);
        if (it != temp_ids_.end()) {
          out += fmt::format("t{}", it->second);
          continue;
        }
      }
      pieces.clear();
      expand(node, piece.node == subject, pieces);
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) stack.push_back(std::move(*it));
    }
  }

  // The pieces `node` prints as, in order. The outermost operator of a line drops its parentheses.
  void expand(const Node& node, bool outermost, std::vector<Piece>& pieces) const {
    auto text = [&](std::string s) { pieces.push_back({std::move(s), nullptr}); };
    auto child = [&](size_t i) { pieces.push_back({"", node.operands[i].get()}); };
    auto list = [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        if (i > begin) text(", ");
        child(i);
      }
    };
    switch (node.kind) {
      case Kind::Const: text(format_const(node)); return;
      case Kind::Builtin: text(builtin_spelling(node.builtin)); return;
      case Kind::Param:
      case Kind::TensorRef: text(param_name(node.index)); return;
      case Kind::Extent: text(extent_name(node.index, node.dim)); return;
      case Kind::Cast:
        text(std::string(type_name(node.type)) + "(");
        child(0);
        text(")");
        return;
      case Kind::Unary:
        // Negation is always parenthesised so that it never prints like a negative constant:
        // `(-5)` is Neg(5), `-5` the literal. `!` has no such twin.
        if (node.op == Op::Neg) {
          text("(-");
          child(0);
          text(")");
        } else {
          text(op_spelling(node.op));
          child(0);
        }
        return;
      case Kind::Binary:
        if (node.op == Op::Min || node.op == Op::Max) {
          text(std::string(op_spelling(node.op)) + "(");
          list(0, 2);
          text(")");
          return;
        }
        if (!outermost) text("(");
        child(0);
        text(fmt::format(" {} ", op_spelling(node.op)));
        child(1);
        if (!outermost) text(")");
        return;
      case Kind::Select:
        text("select(");
        list(0, 3);
        text(")");
        return;
      case Kind::Call:
        text(std::string(op_spelling(node.op)) + "(");
        list(0, node.operands.size());
        text(")");
        return;
      case Kind::Load:
        text(param_name(node.index) + "[");
        list(0, node.operands.size());
        text("]");
        return;
      case Kind::LoadRange: {
        size_t rank = node.operands.size() / 2;
        text(fmt::format("range_{}({}, [", op_spelling(node.op), param_name(node.index)));
        list(0, rank);
        text("], [");
        list(rank, 2 * rank);
        text("])");
        return;
      }
      case Kind::ModCall:
        // Only the definition's index: the printer has no access to the module.
        text(fmt::format("call#{}(", node.index));
        list(0, node.operands.size());
        text(")");
        return;
    }
    ATTNC_ASSERT(false, "unknown node kind");
  }

  const ModDef* context_;
  PrintStyle style_;
  std::unordered_map<const Node*, uint32_t> temp_ids_;  // lookup only; ids follow post-order
};

// `window: int`, `doc: int[B, N]` (readable) or `$0: int`, `$1: int[_, $0.dim1, 64]` (canonical).
std::string format_param(const ModDef& def, uint32_t index, PrintStyle style) {
  const ParamDecl& param = def.params[index];
  bool canonical = style == PrintStyle::Canonical;
  std::string text = canonical ? fmt::format("${}", index) : param.name;
  text += ": ";
  text += type_name(param.elem);
  if (!param.is_tensor()) return text;
  text += '[';
  for (uint32_t d = 0; d < param.dims.size(); ++d) {
    const TensorDim& dim = param.dims[d];
    if (d > 0) text += ", ";
    if (dim.name.empty()) {
      text += std::to_string(dim.size);
    } else if (!canonical) {
      text += dim.name;
    } else if (dim.first_param == index && dim.first_dim == d) {
      text += '_';  // a fresh named extent
    } else {
      // A name bound earlier: the binding must match that extent, which is part of the meaning.
      text += fmt::format("${}.dim{}", dim.first_param, dim.first_dim);
    }
  }
  text += ']';
  return text;
}

}  // namespace

std::string print_expr(const Expr& expr, const ModDef* context, PrintStyle style) {
  std::string out;
  std::string root = ExprPrinter(context, style).print(expr, "", out);
  out += root;
  return out;
}

std::string print_def(const ModDef& def, PrintStyle style) {
  ATTNC_ASSERT(def.body != nullptr, "printing a definition without a body");
  std::string out = def.kind == ModKind::Score ? "score_mod " : "mask_mod ";
  if (style == PrintStyle::Readable) out += def.name;
  out += '(';
  for (uint32_t i = 0; i < def.params.size(); ++i) {
    if (i > 0) out += ", ";
    out += format_param(def, i, style);
  }
  out += fmt::format(") -> {}\n", type_name(def.body->type));
  std::string root = ExprPrinter(&def, style).print(def.body, "  ", out);
  out += "  return ";
  out += root;
  out += '\n';
  return out;
}

}  // namespace attnc::ir
