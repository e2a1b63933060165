#pragma once
// Random well-typed IR for randomized tests: every pass, the interpreter, the tile classifier and the
// backends can be checked against each other on expressions no one thought to write by hand.
// Leaves favour the values where semantics get subtle (0, -1, INT_MIN, INT_MAX, NaN, +-inf, -0.0),
// and operands sometimes reuse an earlier subexpression, so patterns like x - x, min(x, x) and
// select(c, a, a) and shared DAG nodes come up often.
//
// Everything is driven by the caller's std::mt19937, so a failing case is reproduced by its seed.

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "compiler/DType.h"
#include "compiler/IR.h"
#include "compiler/Interpreter.h"
#include "compiler/Module.h"

namespace attnc::ir::test {

// One parameter the random expressions may read: a scalar (empty shape) or a small tensor.
struct RandomParam {
  Type elem = Type::Int;
  std::vector<int64_t> shape;  // empty for a scalar
  DType storage = DType::I32;  // tensors only: how random_environment stores the elements
};

struct RandomExprOptions {
  // Parameters, indexed like ModDef::params. The default mixes every element type, scalars and
  // tensors of rank 1 and 2, and fp16/bf16/int64 storage.
  std::vector<RandomParam> params = default_params();
  bool use_score = true;                // Builtin::Score may appear (as in score mods)
  bool use_tile_builtins = false;       // the tile classifier's q_tile_first, ... may appear
  bool use_int64 = false;               // Int64 arithmetic and LoadRange (tile classifier IR)
  double leaf_probability = 0.2;        // chance that a node above the depth limit is a leaf anyway
  double reuse_probability = 0.15;      // chance that an operand reuses an earlier subexpression
  double edge_value_probability = 0.6;  // chance that a constant or bound value is an edge case

  static std::vector<RandomParam> default_params();
};

// A random expression of `type` (Bool, Int, Float; Int64 only with options.use_int64) at most
// `depth` operators deep, reading only the builtins and parameters `options` allows.
Expr random_expr(std::mt19937& rng, Type type, int depth, const RandomExprOptions& options = {});

// A random value of `type`, edge cases included.
Value random_value(std::mt19937& rng, Type type, double edge_value_probability = 0.6);

// An interpreter environment binding every builtin and every parameter of `options` to random
// values (tensors filled with random elements in their storage type). It owns the tensor memory the
// environment points to; copies share it.
struct RandomEnvironment {
  Environment env;
  std::vector<std::shared_ptr<std::vector<unsigned char>>> buffers;
};
RandomEnvironment random_environment(std::mt19937& rng, const RandomExprOptions& options = {});

// The parameter declarations matching options.params (names p0, p1, ...; tensor extents named
// p<i>_d<j>), for building a ModDef around a random body.
std::vector<ParamDecl> random_param_decls(const RandomExprOptions& options = {});

// The storage types of options.params, as compute_signature takes them.
std::vector<DType> random_param_storage(const RandomExprOptions& options = {});

// Whether two results are "the same" for checking a transformation: bit-identical, except that any
// two NaNs match (IEEE leaves NaN payloads and signs to the hardware).
bool same_result(const Value& a, const Value& b);

}  // namespace attnc::ir::test
