#pragma once
// The interpreter: evaluates IR at one point with bound parameters. It is the semantic reference
// for every pass and backend: constant folding, the CUDA and LLVM code generators and the tile
// classifier are all tested against it. Operations follow compiler/Semantics.h exactly.

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "compiler/DType.h"
#include "compiler/IR.h"
#include "compiler/Semantics.h"

namespace attnc::ir {

// A tensor argument as the interpreter sees it: a strided view of host memory (strides in elements).
struct TensorArg {
  const void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
};

// What one parameter is bound to: a scalar Value (of the parameter's type) or a tensor.
using ParamBinding = std::variant<Value, TensorArg>;

// Everything an expression can read. Builtins are indexed by ir::Builtin.
struct Environment {
  std::array<Value, kBuiltinCount> builtins{};
  std::vector<ParamBinding> params;  // indexed like ModDef::params
  bool check_bounds = false;         // throw IndexOutOfRange instead of clamping

  void set(Builtin builtin, Value value) { builtins[static_cast<int>(builtin)] = value; }
  void set_point(int32_t b, int32_t h, int32_t q_idx, int32_t kv_idx, float score = 0.0f);
  void set_sizes(int32_t q_len, int32_t kv_len, int32_t num_heads, int32_t num_kv_heads);
};

// A tensor index outside its extent while bounds checking is on. The runtime adds the mod's name,
// the parameter's name and the (b, h, q_idx, kv_idx) position.
class IndexOutOfRange : public std::runtime_error {
 public:
  IndexOutOfRange(uint32_t param, uint32_t dim, int64_t index, int64_t extent);
  uint32_t param, dim;
  int64_t index, extent;
};

// An expression flattened once into a tape of instructions, then evaluated at many points without
// recursion or allocation. Shared subexpressions are evaluated once per point.
class CompiledExpr {
 public:
  explicit CompiledExpr(const Expr& root);
  Value evaluate(const Environment& env) const;
  Type type() const { return type_; }

 private:
  struct Instruction {
    const Node* node;
    std::vector<uint32_t> operands;  // tape slots
  };
  Expr root_;  // keeps the nodes the tape points to alive
  std::vector<Instruction> tape_;
  Type type_;
  mutable std::vector<Value> slots_;  // scratch; CompiledExpr is not thread-safe
};

// One-shot convenience: CompiledExpr(root).evaluate(env).
Value evaluate(const Expr& root, const Environment& env);

}  // namespace attnc::ir
