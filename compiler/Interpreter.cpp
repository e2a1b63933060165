#include "compiler/Interpreter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "compiler/IRMutator.h"
#include "compiler/Signature.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

// LoadRange walks its box with an odometer; ranks up to this size keep it on the stack.
constexpr size_t kInlineRank = 8;

int32_t wrap_to_int32(int64_t v) { return static_cast<int32_t>(v); }  // modular since C++20

// A mistyped or missing binding is the caller's mistake, not attnc's: std::invalid_argument.
[[noreturn]] void bad_binding(const std::string& message) { throw std::invalid_argument(message); }

const ParamBinding& binding_of(const Environment& env, uint32_t param) {
  if (param >= env.params.size()) {
    bad_binding(
        fmt::format("parameter #{} is not bound (the environment binds {} parameters)", param, env.params.size()));
  }
  return env.params[param];
}

const TensorArg& tensor_of(const Environment& env, uint32_t param) {
  const auto* tensor = std::get_if<TensorArg>(&binding_of(env, param));
  if (tensor == nullptr) bad_binding(fmt::format("parameter #{} is bound to a scalar but used as a tensor", param));
  if (tensor->shape.size() != tensor->strides.size()) {
    bad_binding(fmt::format("tensor parameter #{} has {} extents but {} strides", param, tensor->shape.size(),
                            tensor->strides.size()));
  }
  return *tensor;
}

// The tensor a Load or LoadRange of element type `elem` and rank `rank` reads.
const TensorArg& loadable_tensor(const Environment& env, uint32_t param, Type elem, size_t rank) {
  const TensorArg& tensor = tensor_of(env, param);
  if (tensor.shape.size() != rank) {
    bad_binding(fmt::format("tensor parameter #{} is indexed with {} indices but bound to a tensor of rank {}", param,
                            rank, tensor.shape.size()));
  }
  if (!storage_fits(elem, tensor.dtype)) {
    bad_binding(fmt::format("tensor parameter #{} holds {} elements but is bound to {} storage", param, type_name(elem),
                            dtype_name(tensor.dtype)));
  }
  if (tensor.data == nullptr) bad_binding(fmt::format("tensor parameter #{} has no data", param));
  return tensor;
}

// Clamps `index` into [0, extent); with bounds checking on, an index outside it throws instead.
int64_t clamp_index(int64_t index, int64_t extent, uint32_t param, uint32_t dim, bool check_bounds) {
  if (index >= 0 && index < extent) return index;
  if (check_bounds) throw IndexOutOfRange(param, dim, index, extent);
  if (extent <= 0) {
    bad_binding(fmt::format("tensor parameter #{} has extent {} in dimension {}: there is nothing to load", param,
                            extent, dim));
  }
  return index < 0 ? 0 : extent - 1;
}

Value load_element(const TensorArg& tensor, Type elem, int64_t offset) {
  switch (elem) {
    case Type::Float: return Value::of_float(load_as_float(tensor.data, tensor.dtype, offset));
    case Type::Int: return Value::of_int(wrap_to_int32(load_as_int(tensor.data, tensor.dtype, offset)));
    case Type::Bool: return Value::of_bool(load_as_bool(tensor.data, tensor.dtype, offset));
    case Type::Int64: break;
  }
  ATTNC_ASSERT(false, "tensor elements are bool, int or float");
  return {};
}

// min or max of `tensor` over the box [from[d], to[d]] (already clamped, from <= to).
// Float min/max skip NaN like fminf/fmaxf, starting from NaN so an all-NaN box gives NaN.
Value reduce_box(const TensorArg& tensor, Op op, Type elem, const int64_t* from, const int64_t* to, int64_t* at,
                 size_t rank) {
  bool is_min = op == Op::Min;
  float float_acc = std::numeric_limits<float>::quiet_NaN();
  int32_t int_acc = is_min ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min();
  std::copy(from, from + rank, at);
  while (true) {
    int64_t offset = 0;
    for (size_t d = 0; d < rank; ++d) offset += at[d] * tensor.strides[d];
    Value v = load_element(tensor, elem, offset);
    if (elem == Type::Float) {
      float_acc = is_min ? float_min(float_acc, v.f) : float_max(float_acc, v.f);
    } else {
      int_acc = is_min ? std::min(int_acc, v.as_int()) : std::max(int_acc, v.as_int());
    }
    // Odometer step, last dimension fastest.
    size_t d = rank;
    while (d > 0) {
      --d;
      if (at[d] < to[d]) {
        ++at[d];
        break;
      }
      at[d] = from[d];
      if (d == 0) return elem == Type::Float ? Value::of_float(float_acc) : Value::of_int(int_acc);
    }
  }
}

}  // namespace

void Environment::set_point(int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx, float score) {
  set(Builtin::Batch, Value::of_int(b));
  set(Builtin::Head, Value::of_int(h));
  set(Builtin::QIdx, Value::of_int(q_idx));
  set(Builtin::KvIdx, Value::of_int(kv_idx));
  set(Builtin::Score, Value::of_float(score));
}

void Environment::set_sizes(int32_t q_len, int32_t kv_len, int32_t num_heads, int32_t num_kv_heads) {
  set(Builtin::QLen, Value::of_int(q_len));
  set(Builtin::KvLen, Value::of_int(kv_len));
  set(Builtin::NumHeads, Value::of_int(num_heads));
  set(Builtin::NumKvHeads, Value::of_int(num_kv_heads));
}

IndexOutOfRange::IndexOutOfRange(uint32_t param, uint32_t dim, int64_t index, int64_t extent)
    : std::runtime_error(fmt::format("index {} is out of range for dimension {} of extent {}", index, dim, extent)),
      param(param),
      dim(dim),
      index(index),
      extent(extent) {}

CompiledExpr::CompiledExpr(const Expr& root) : root_(root), type_(Type::Int) {
  ATTNC_ASSERT(root != nullptr, "evaluating a null expression");
  type_ = root->type;
  std::unordered_map<const Node*, uint32_t> slot_of;  // lookup only; the tape's order comes from for_each_node
  for_each_node(root, [&](const Expr& node) {
    if (node->kind == Kind::ModCall || node->kind == Kind::TensorRef) {
      ATTNC_ASSERT(false, fmt::format("{} node in an evaluated expression: inline calls before evaluating",
                                      kind_name(node->kind)));
    }
    Instruction instruction{node.get(), {}};
    instruction.operands.reserve(node->operands.size());
    for (const Expr& operand : node->operands) instruction.operands.push_back(slot_of.at(operand.get()));
    slot_of.emplace(node.get(), static_cast<uint32_t>(tape_.size()));
    tape_.push_back(std::move(instruction));
  });
  slots_.resize(tape_.size());
}

Value CompiledExpr::evaluate(const Environment& env) const {
  std::array<int64_t, 3 * kInlineRank> box_inline{};
  for (size_t pc = 0; pc < tape_.size(); ++pc) {
    const Instruction& instruction = tape_[pc];
    const Node& node = *instruction.node;
    auto operand = [&](size_t i) -> const Value& { return slots_[instruction.operands[i]]; };
    Value result;
    switch (node.kind) {
      case Kind::Const:
        result.type = node.type;
        result.i = node.int_value;
        result.f = node.float_value;
        break;
      case Kind::Builtin: {
        result = env.builtins[static_cast<int>(node.builtin)];
        if (result.type != node.type) {
          bad_binding(fmt::format("built-in '{}' is bound to a {} value; it is a {}", builtin_spelling(node.builtin),
                                  type_name(result.type), type_name(node.type)));
        }
        break;
      }
      case Kind::Param: {
        const auto* value = std::get_if<Value>(&binding_of(env, node.index));
        if (value == nullptr) {
          bad_binding(fmt::format("parameter #{} is bound to a tensor but used as a scalar {}", node.index,
                                  type_name(node.type)));
        }
        if (value->type != node.type) {
          bad_binding(fmt::format("parameter #{} is a {} but is bound to a {} value", node.index, type_name(node.type),
                                  type_name(value->type)));
        }
        result = *value;
        break;
      }
      case Kind::Extent: {
        const TensorArg& tensor = tensor_of(env, node.index);
        if (node.dim >= tensor.shape.size()) {
          bad_binding(
              fmt::format("tensor parameter #{} has rank {} but the expression reads the extent of dimension {}",
                          node.index, tensor.shape.size(), node.dim));
        }
        int64_t extent = tensor.shape[node.dim];
        if (extent < 0 || extent > std::numeric_limits<int32_t>::max()) {
          bad_binding(fmt::format("tensor parameter #{} has extent {} in dimension {}, outside the int range",
                                  node.index, extent, node.dim));
        }
        result = Value::of_int(static_cast<int32_t>(extent));
        break;
      }
      case Kind::Cast: result = evaluate_cast(node.type, operand(0)); break;
      case Kind::Unary: result = evaluate_unary(node.op, operand(0)); break;
      case Kind::Binary: result = evaluate_binary(node.op, operand(0), operand(1)); break;
      case Kind::Select: result = operand(0).as_bool() ? operand(1) : operand(2); break;
      case Kind::Call: {
        std::array<Value, 2> args;
        ATTNC_ASSERT(instruction.operands.size() <= args.size(), "math functions take at most two arguments");
        for (size_t i = 0; i < instruction.operands.size(); ++i) args[i] = operand(i);
        result = evaluate_call(node.op, std::span<const Value>(args.data(), instruction.operands.size()));
        break;
      }
      case Kind::Load: {
        size_t rank = instruction.operands.size();
        const TensorArg& tensor = loadable_tensor(env, node.index, node.type, rank);
        int64_t offset = 0;
        for (size_t d = 0; d < rank; ++d) {
          int64_t index =
              clamp_index(operand(d).i, tensor.shape[d], node.index, static_cast<uint32_t>(d), env.check_bounds);
          offset += index * tensor.strides[d];
        }
        result = load_element(tensor, node.type, offset);
        break;
      }
      case Kind::LoadRange: {
        // Always clamps, even with bounds checking on: it summarises what clamped loads could read.
        size_t rank = instruction.operands.size() / 2;
        const TensorArg& tensor = loadable_tensor(env, node.index, node.type, rank);
        std::vector<int64_t> box_heap;
        int64_t* box = box_inline.data();
        if (rank > kInlineRank) {
          box_heap.resize(3 * rank);
          box = box_heap.data();
        }
        int64_t* from = box;
        int64_t* to = box + rank;
        int64_t* at = box + 2 * rank;
        for (size_t d = 0; d < rank; ++d) {
          auto dim = static_cast<uint32_t>(d);
          int64_t a = clamp_index(operand(d).i, tensor.shape[d], node.index, dim, false);
          int64_t b = clamp_index(operand(rank + d).i, tensor.shape[d], node.index, dim, false);
          from[d] = std::min(a, b);
          to[d] = std::max(a, b);
        }
        result = reduce_box(tensor, node.op, node.type, from, to, at, rank);
        break;
      }
      case Kind::TensorRef:
      case Kind::ModCall: ATTNC_ASSERT(false, "inline calls before evaluating"); break;
    }
    slots_[pc] = result;
  }
  return slots_.back();
}

Value evaluate(const Expr& root, const Environment& env) { return CompiledExpr(root).evaluate(env); }

}  // namespace attnc::ir
