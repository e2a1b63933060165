#include "compiler/CudaCodegen.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "compiler/IRMutator.h"
#include "compiler/Limits.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

const char* cuda_type(Type type) {
  switch (type) {
    case Type::Bool: return "bool";
    case Type::Int: return "int32_t";
    case Type::Int64: return "int64_t";
    case Type::Float: return "float";
  }
  return "?";
}

// The helper-name suffix of an arithmetic type (attnc_abi::add_i32, ...).
const char* type_suffix(Type type) {
  switch (type) {
    case Type::Int: return "i32";
    case Type::Int64: return "i64";
    case Type::Float: return "f32";
    case Type::Bool: break;
  }
  ATTNC_ASSERT(false, "arithmetic on a bool");
  return "";
}

const char* storage_name(DType storage) {
  switch (storage) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::Bool: return "Bool";
  }
  return "?";
}

DType storage_of(std::span<const ParamDecl> params, std::span<const DType> storage, uint32_t index) {
  ATTNC_ASSERT(index < params.size(), "tensor parameter index out of range");
  const ParamDecl& param = params[index];
  DType chosen = index < storage.size() ? storage[index] : default_storage(param.elem);
  ATTNC_ASSERT(storage_fits(param.elem, chosen),
               fmt::format("a {} tensor cannot be stored as {}", type_name(param.elem), dtype_name(chosen)));
  return chosen;
}

// A float constant as exact C++ text: a literal for zeros and normal numbers (shortest round-trip
// digits), the bit pattern for infinities, NaNs and subnormals (some compilers warn on subnormal
// literals, and NaN has no literal).
std::string float_literal(float value) {
  if (!std::isfinite(value) || (value != 0.0f && std::fabs(value) < std::numeric_limits<float>::min())) {
    return fmt::format("attnc_abi::float_from_bits(0x{:08x}u)", std::bit_cast<uint32_t>(value));
  }
  std::string digits = fmt::format("{}", value);
  if (digits.find_first_of(".e") == std::string::npos) digits += ".0";
  return digits + "f";
}

std::string int_literal(Type type, int64_t value) {
  if (type == Type::Int) {
    if (value == std::numeric_limits<int32_t>::min()) return "attnc_abi::kIntMin";
    return std::to_string(value);
  }
  if (value == std::numeric_limits<int64_t>::min()) return "attnc_abi::kInt64Min";
  return fmt::format("int64_t({})", value);
}

// What the function being emitted has in scope.
struct Scope {
  bool score = false;   // `float score`
  bool point = false;   // `const attnc_abi::ModPoint& p` (always passed; q_idx/kv_idx unused in tile_class)
  bool tile = false;    // `const attnc_abi::TileBox& tile`
  bool report = false;  // `attnc_abi::BoundsReport* report`
};

// Emits the statements of one function body. Every non-leaf node becomes `const T tN = ...;` in
// visit order (operands first, left to right); leaves are written where they are used.
class BodyEmitter {
 public:
  BodyEmitter(std::span<const ParamDecl> params, std::span<const DType> storage, uint32_t field_base, bool check_bounds,
              Scope scope)
      : params_(params), storage_(storage), field_base_(field_base), check_bounds_(check_bounds), scope_(scope) {}

  // Appends the statements to `out` and returns the expression text of `root`'s value.
  std::string emit(const Expr& root, std::string& out) {
    for_each_node(root, [&](const Expr& node) { visit(node, out); });
    return value_of(root);
  }

 private:
  std::string value_of(const Expr& node) const {
    auto found = names_.find(node.get());
    ATTNC_ASSERT(found != names_.end(), "operand emitted before its user");
    return found->second;
  }
  std::string operand(const Expr& node, size_t i) const { return value_of(node->operands[i]); }

  std::string field(uint32_t param) const { return fmt::format("params.p{}", field_base_ + param); }

  void visit(const Expr& node, std::string& out) {
    if (std::string leaf = leaf_text(node); !leaf.empty()) {
      names_.emplace(node.get(), std::move(leaf));
      return;
    }
    std::string name = fmt::format("t{}", next_temp_++);
    std::string value = compute_text(node, name, out);
    out += fmt::format("  const {} {} = {};\n", cuda_type(node->type), name, value);
    names_.emplace(node.get(), std::move(name));
  }

  // The text of a leaf (constant, builtin, scalar parameter, extent); empty for other nodes.
  std::string leaf_text(const Expr& node) const {
    switch (node->kind) {
      case Kind::Const:
        if (node->type == Type::Bool) return node->int_value != 0 ? "true" : "false";
        if (node->type == Type::Float) return float_literal(node->float_value);
        return int_literal(node->type, node->int_value);
      case Kind::Builtin: return builtin_text(node->builtin);
      case Kind::Param:
        ATTNC_ASSERT(node->index < params_.size() && !params_[node->index].is_tensor(), "scalar parameter index");
        if (node->type == Type::Bool) return fmt::format("({} != 0)", field(node->index));
        return field(node->index);
      case Kind::Extent:
        ATTNC_ASSERT(node->index < params_.size() && node->dim < params_[node->index].rank(), "extent of a tensor");
        return fmt::format("static_cast<int32_t>({}.shape[{}])", field(node->index), node->dim);
      default: return {};
    }
  }

  std::string builtin_text(Builtin builtin) const {
    auto need = [](bool in_scope, const char* what) {
      ATTNC_ASSERT(in_scope, fmt::format("'{}' is not available in this generated function", what));
    };
    switch (builtin) {
      case Builtin::Score: need(scope_.score, "score"); return "score";
      case Builtin::Batch: need(scope_.point, "b"); return "p.b";
      case Builtin::Head: need(scope_.point, "h"); return "p.h";
      case Builtin::QIdx: need(scope_.point, "q_idx"); return "p.q_idx";
      case Builtin::KvIdx: need(scope_.point, "kv_idx"); return "p.kv_idx";
      case Builtin::QLen: need(scope_.point, "q_len"); return "p.q_len";
      case Builtin::KvLen: need(scope_.point, "kv_len"); return "p.kv_len";
      case Builtin::NumHeads: need(scope_.point, "num_heads"); return "p.num_heads";
      case Builtin::NumKvHeads: need(scope_.point, "num_kv_heads"); return "p.num_kv_heads";
      case Builtin::QTileFirst: need(scope_.tile, "q_tile_first"); return "tile.q_first";
      case Builtin::QTileLast: need(scope_.tile, "q_tile_last"); return "tile.q_last";
      case Builtin::KvTileFirst: need(scope_.tile, "kv_tile_first"); return "tile.kv_first";
      case Builtin::KvTileLast: need(scope_.tile, "kv_tile_last"); return "tile.kv_last";
    }
    return "?";
  }

  std::string compute_text(const Expr& node, const std::string& name, std::string& out) {
    switch (node->kind) {
      case Kind::Cast: return cast_text(node->type, node->operands[0]->type, operand(node, 0));
      case Kind::Unary:
        if (node->op == Op::Not) return "!" + operand(node, 0);
        ATTNC_ASSERT(node->op == Op::Neg, "unary operator");
        if (node->type == Type::Float) return fmt::format("-({})", operand(node, 0));
        return fmt::format("attnc_abi::neg_{}({})", type_suffix(node->type), operand(node, 0));
      case Kind::Binary: return binary_text(node);
      case Kind::Select: return fmt::format("{} ? {} : {}", operand(node, 0), operand(node, 1), operand(node, 2));
      case Kind::Call: return call_text(node);
      case Kind::Load: return load_text(node, name, out);
      case Kind::LoadRange: return load_range_text(node, name, out);
      default: break;
    }
    ATTNC_ASSERT(false, fmt::format("{} node in code generation: inline calls first", kind_name(node->kind)));
    return {};
  }

  static std::string cast_text(Type to, Type from, const std::string& x) {
    switch (to) {
      case Type::Bool: return from == Type::Float ? fmt::format("{} != 0.0f", x) : fmt::format("{} != 0", x);
      case Type::Int:
        if (from == Type::Bool) return fmt::format("{} ? 1 : 0", x);
        if (from == Type::Float) return fmt::format("attnc_abi::f32_to_i32({})", x);
        return fmt::format("attnc_abi::i64_to_i32({})", x);
      case Type::Int64:
        if (from == Type::Bool) return fmt::format("{} ? int64_t(1) : int64_t(0)", x);
        if (from == Type::Float) return fmt::format("attnc_abi::f32_to_i64({})", x);
        return fmt::format("static_cast<int64_t>({})", x);
      case Type::Float:
        if (from == Type::Bool) return fmt::format("{} ? 1.0f : 0.0f", x);
        return fmt::format("attnc_abi::{}_to_f32({})", type_suffix(from), x);
    }
    return {};
  }

  std::string binary_text(const Expr& node) const {
    const std::string a = operand(node, 0), b = operand(node, 1);
    const Type type = node->operands[0]->type;
    switch (node->op) {
      case Op::And: return fmt::format("{} && {}", a, b);
      case Op::Or: return fmt::format("{} || {}", a, b);
      case Op::Lt:
      case Op::Le:
      case Op::Gt:
      case Op::Ge:
      case Op::Eq:
      case Op::Ne: return fmt::format("{} {} {}", a, op_spelling(node->op), b);
      default: break;
    }
    const char* helper = nullptr;
    switch (node->op) {
      case Op::Add: helper = "add"; break;
      case Op::Sub: helper = "sub"; break;
      case Op::Mul: helper = "mul"; break;
      case Op::Div: helper = "div"; break;
      case Op::Mod: helper = type == Type::Float ? "fmod" : "mod"; break;
      case Op::Min: helper = "min"; break;
      case Op::Max: helper = "max"; break;
      default: ATTNC_ASSERT(false, fmt::format("binary operator '{}'", op_spelling(node->op)));
    }
    return fmt::format("attnc_abi::{}_{}({}, {})", helper, type_suffix(type), a, b);
  }

  std::string call_text(const Expr& node) const {
    const char* helper = nullptr;
    switch (node->op) {
      case Op::Abs: return fmt::format("attnc_abi::abs_{}({})", type_suffix(node->type), operand(node, 0));
      case Op::Pow: return fmt::format("attnc_abi::pow_f32({}, {})", operand(node, 0), operand(node, 1));
      case Op::Exp: helper = "exp"; break;
      case Op::Exp2: helper = "exp2"; break;
      case Op::Log: helper = "log"; break;
      case Op::Log2: helper = "log2"; break;
      case Op::Sqrt: helper = "sqrt"; break;
      case Op::Rsqrt: helper = "rsqrt"; break;
      case Op::Tanh: helper = "tanh"; break;
      case Op::Sigmoid: helper = "sigmoid"; break;
      case Op::Sin: helper = "sin"; break;
      case Op::Cos: helper = "cos"; break;
      case Op::Floor: helper = "floor"; break;
      case Op::Ceil: helper = "ceil"; break;
      case Op::Round: helper = "round"; break;
      default: ATTNC_ASSERT(false, fmt::format("'{}' is not a math function", op_spelling(node->op)));
    }
    return fmt::format("attnc_abi::{}_f32({})", helper, operand(node, 0));
  }

  // `const int64_t NAME_SUFFIX[r] = {...};` from operands [from, from + r).
  void index_array(const Expr& node, const std::string& name, const char* suffix, size_t from, size_t rank,
                   std::string& out) const {
    std::string items;
    for (size_t d = 0; d < rank; ++d) {
      const Expr& index = node->operands[from + d];
      std::string value = value_of(index);
      if (index->type != Type::Int64) value = fmt::format("static_cast<int64_t>({})", value);
      items += (d == 0 ? "" : ", ") + value;
    }
    out += fmt::format("  const int64_t {}_{}[{}] = {{{}}};\n", name, suffix, rank, items);
  }

  const char* element_helper(Type elem) const {
    switch (elem) {
      case Type::Float: return "element_float";
      case Type::Int: return "element_int";
      case Type::Bool: return "element_bool";
      case Type::Int64: break;
    }
    ATTNC_ASSERT(false, "tensor elements are bool, int or float");
    return "";
  }

  std::string load_text(const Expr& node, const std::string& name, std::string& out) const {
    const size_t rank = node->operands.size();
    ATTNC_ASSERT(node->index < params_.size() && params_[node->index].rank() == rank, "load of a tensor parameter");
    const DType storage = storage_of(params_, storage_, node->index);
    index_array(node, name, "at", 0, rank, out);
    const std::string tensor = field(node->index);
    std::string offset = check_bounds_ && scope_.report
                             ? fmt::format("attnc_abi::checked_offset({}, {}_at, {}, p, report)", tensor, name,
                                           field_base_ + node->index)
                             : fmt::format("attnc_abi::clamped_offset({}, {}_at)", tensor, name);
    return fmt::format("attnc_abi::{}<attnc_abi::Storage::{}>({}, {})", element_helper(node->type),
                       storage_name(storage), tensor, offset);
  }

  std::string load_range_text(const Expr& node, const std::string& name, std::string& out) const {
    const size_t rank = node->operands.size() / 2;
    ATTNC_ASSERT(node->index < params_.size() && params_[node->index].rank() == rank, "range of a tensor parameter");
    const DType storage = storage_of(params_, storage_, node->index);
    index_array(node, name, "first", 0, rank, out);
    index_array(node, name, "last", rank, rank, out);
    return fmt::format("attnc_abi::range_{}<attnc_abi::Storage::{}, {}>({}, {}_first, {}_last)",
                       node->type == Type::Float ? "float" : "int", storage_name(storage),
                       node->op == Op::Min ? "true" : "false", field(node->index), name, name);
  }

  std::span<const ParamDecl> params_;
  std::span<const DType> storage_;
  uint32_t field_base_;
  bool check_bounds_;
  Scope scope_;
  int next_temp_ = 0;
  std::unordered_map<const Node*, std::string> names_;  // lookup only; the order comes from for_each_node
};

// "  (void)a;\n" for each name: the parameters a body may not read, silenced for -Wunused.
std::string unused(std::initializer_list<const char*> names) {
  std::string out;
  for (const char* n : names) out += fmt::format("  (void){};\n", n);
  return out;
}

const char* elem_name(Type elem) { return type_name(elem); }

struct FieldLayout {
  std::vector<CudaParamField> fields;
  size_t size = 0, align = 1;
};

void add_fields(FieldLayout& layout, const ModDef& def, std::span<const DType> storage, bool from_mask) {
  for (uint32_t i = 0; i < def.params.size(); ++i) {
    const ParamDecl& param = def.params[i];
    CudaParamField f;
    f.from_mask = from_mask;
    f.param = i;
    size_t size = 4, align = 4;
    if (param.is_tensor()) {
      ATTNC_ASSERT(param.rank() <= kMaxTensorRank, "the type checker allows no tensor parameter of higher rank");
      f.kind = CudaParamField::Kind::Tensor;
      f.rank = static_cast<uint32_t>(param.rank());
      f.storage = storage_of(def.params, storage, i);
      size = kCudaTensorParamSize;
      align = kCudaTensorParamAlign;
    } else {
      f.kind = param.elem == Type::Float  ? CudaParamField::Kind::Float
               : param.elem == Type::Bool ? CudaParamField::Kind::Bool
                                          : CudaParamField::Kind::Int;
    }
    layout.size = (layout.size + align - 1) / align * align;
    f.offset = layout.size;
    layout.size += size;
    layout.align = std::max(layout.align, align);
    layout.fields.push_back(f);
  }
}

std::string param_comment(const ModDef& def, const CudaParamField& f, bool annotate) {
  const ParamDecl& param = def.params[f.param];
  std::string what = fmt::format("{} mod parameter {}", f.from_mask ? "mask" : "score", f.param);
  if (annotate) what += fmt::format(" '{}'", sanitize_cuda_comment(param.name));
  if (!param.is_tensor()) return fmt::format("{}: {}", what, elem_name(param.elem));
  std::string dims;
  for (size_t d = 0; d < param.rank(); ++d) {
    const TensorDim& dim = param.dims[d];
    std::string text = dim.size >= 0 ? std::to_string(dim.size) : (annotate ? sanitize_cuda_comment(dim.name) : "_");
    dims += (d == 0 ? "" : ", ") + text;
  }
  return fmt::format("{}: {}[{}] stored as {}", what, elem_name(param.elem), dims, dtype_name(f.storage));
}

std::string describe_mod(const char* kind, const ModDef* def, bool annotate) {
  if (def == nullptr) return fmt::format("// {} mod: none\n", kind);
  if (!annotate) return fmt::format("// {} mod: {} parameters\n", kind, def->params.size());
  return fmt::format("// {} mod: '{}', {} parameters\n", kind, sanitize_cuda_comment(def->name), def->params.size());
}

}  // namespace

std::string sanitize_cuda_comment(std::string_view text) {
  constexpr size_t kMaxLength = 80;
  std::string out;
  for (char c : text) {
    if (out.size() == kMaxLength) break;
    const bool printable = c >= 0x20 && c <= 0x7e;
    // A backslash could splice the next line into the comment; '*' '/' could end a block comment
    // should this text ever be placed in one.
    if (!printable || c == '\\' || (c == '/' && !out.empty() && out.back() == '*')) c = '_';
    out += c;
  }
  return out;
}

CudaModSource generate_cuda_mods(const ModDef* score, std::span<const DType> score_storage, const ModDef* mask,
                                 std::span<const DType> mask_storage, const CudaCodegenOptions& options) {
  ATTNC_ASSERT(score == nullptr || (score->kind == ModKind::Score && score->body->type == Type::Float),
               "the score mod must be a score mod with a float body");
  ATTNC_ASSERT(mask == nullptr || (mask->kind == ModKind::Mask && mask->body->type == Type::Bool),
               "the mask mod must be a mask mod with a bool body");
  CudaModSource result;
  result.has_score = score != nullptr;
  result.has_mask = mask != nullptr;
  result.check_bounds = options.check_bounds;

  FieldLayout layout;
  if (score) add_fields(layout, *score, score_storage, false);
  const uint32_t mask_base = static_cast<uint32_t>(layout.fields.size());
  if (mask) add_fields(layout, *mask, mask_storage, true);
  layout.size = layout.fields.empty() ? 1 : (layout.size + layout.align - 1) / layout.align * layout.align;
  result.fields = layout.fields;
  result.params_size = layout.size;
  result.params_align = layout.align;

  std::string& out = result.text;
  out += "// Generated by attnc (compiler/CudaCodegen.cpp). Do not edit.\n";
  out += describe_mod("score", score, options.annotate_names);
  out += describe_mod("mask", mask, options.annotate_names);
  out += "#pragma once\n#include \"mod_abi.cuh\"\n\nnamespace attnc_gen {\n\n";

  out += "struct ModParams {\n";
  for (size_t i = 0; i < layout.fields.size(); ++i) {
    const CudaParamField& f = layout.fields[i];
    const char* type = "int32_t";
    if (f.kind == CudaParamField::Kind::Float) type = "float";
    if (f.kind == CudaParamField::Kind::Tensor) type = "attnc_abi::TensorParam";
    const ModDef& def = f.from_mask ? *mask : *score;
    out += fmt::format("  {} p{};  // {}\n", type, i, param_comment(def, f, options.annotate_names));
  }
  out += "};\n";
  out += fmt::format("static_assert(sizeof(ModParams) == {}, \"ModParams layout\");\n", layout.size);
  // (NVRTC has no offsetof; the size and alignment catch a layout that differs from `fields`.)
  out += fmt::format("static_assert(alignof(ModParams) == {}, \"ModParams layout\");\n", layout.align);
  out += fmt::format("\nconstexpr bool kHasScoreMod = {};\n", result.has_score);
  out += fmt::format("constexpr bool kHasMaskMod = {};\n", result.has_mask);
  out += fmt::format("constexpr bool kCheckBounds = {};\n\n", options.check_bounds);

  out +=
      "ATTNC_DEVICE float score_mod(float score, const attnc_abi::ModPoint& p, const ModParams& params,\n"
      "                             attnc_abi::BoundsReport* report) {\n";
  out += unused({"p", "params", "report"});
  if (score) {
    BodyEmitter emitter(score->params, score_storage, 0, options.check_bounds, {true, true, false, true});
    std::string value = emitter.emit(score->body, out);
    out += fmt::format("  return {};\n", value);
  } else {
    out += "  return score;\n";
  }
  out += "}\n\n";

  out +=
      "ATTNC_DEVICE bool mask_mod(const attnc_abi::ModPoint& p, const ModParams& params,\n"
      "                           attnc_abi::BoundsReport* report) {\n";
  out += unused({"p", "params", "report"});
  if (mask) {
    BodyEmitter emitter(mask->params, mask_storage, mask_base, options.check_bounds, {false, true, false, true});
    std::string value = emitter.emit(mask->body, out);
    out += fmt::format("  return {};\n", value);
  } else {
    out += "  return true;\n";
  }
  out += "}\n\n";

  out +=
      "// 0 EMPTY, 1 FULL, 2 PARTIAL (compiler/TileClassifier.h).\n"
      "ATTNC_DEVICE int tile_class(const attnc_abi::TileBox& tile, const attnc_abi::ModPoint& p,\n"
      "                            const ModParams& params) {\n";
  out += unused({"tile", "p", "params"});
  if (mask) {
    BodyEmitter emitter(mask->params, mask_storage, mask_base, false, {false, true, true, false});
    std::string value = emitter.emit(build_tile_classifier(*mask), out);
    out += fmt::format("  return {};\n", value);
  } else {
    out += "  return 1;\n";
  }
  out += "}\n\n}  // namespace attnc_gen\n";
  return result;
}

std::string generate_cuda_expr_function(const Expr& expr, std::string_view name, std::span<const ParamDecl> params,
                                        std::span<const DType> storage, bool check_bounds) {
  std::string out = fmt::format(
      "ATTNC_DEVICE {} {}(float score, const attnc_abi::ModPoint& p, const attnc_abi::TileBox& tile,\n"
      "    const ModParams& params, attnc_abi::BoundsReport* report) {{\n",
      cuda_type(expr->type), name);
  out += unused({"score", "p", "tile", "params", "report"});
  // The point's q_idx / kv_idx and the tile bounds are both in scope here.
  BodyEmitter emitter(params, storage, 0, check_bounds, {true, true, true, true});
  std::string value = emitter.emit(expr, out);
  out += fmt::format("  return {};\n}}\n", value);
  return out;
}

}  // namespace attnc::ir
