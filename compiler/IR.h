#pragma once
// The typed expression IR of attnc: closed, immutable, shared.
//
// Semantics (the language contract, ../shared/spec/mod-language.md, in IR terms):
// - Types: Bool; Int (32-bit two's complement, wrapping); Float (IEEE binary32); Int64 (internal,
//   produced only by the tile classifier for exact interval bounds, never by user text).
// - Every operation is total: integer division and remainder by zero give 0, INT_MIN / -1 wraps,
//   Float -> Int casts truncate, saturate and map NaN to 0. The exact rules live in
//   compiler/Semantics.h, shared by the interpreter and constant folding; backends must match them.
// - Binary operands have equal types (the type checker inserts Cast nodes for promotion).
//   Comparisons give Bool; And/Or take Bool. Min/Max on Float follow C fminf/fmaxf (a NaN operand
//   is ignored).
// - A mask mod's body is Bool (true keeps the element); a score mod's body is Float.
// - Load reads tensor parameter #index at one Int index per dimension; an index outside
//   [0, extent) is clamped into range (or reported, with bounds checking on).
// - Nodes are built only through the make_* functions, which check these invariants and throw
//   InternalError. A node never changes after it is made; passes build new nodes and share the
//   unchanged ones. Equal structure may or may not be one object until share_subexpressions runs.
// - The IR is a DAG and may be as deep as user input makes it (a chain of definitions or lets): code
//   that walks it uses an explicit stack (compiler/IRMutator.h) and visits each distinct node once,
//   never the tree the DAG stands for. Freeing a node is iterative too.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace attnc::ir {

enum class Type : uint8_t { Bool, Int, Float, Int64 };

const char* type_name(Type type);  // "bool", "int", "float", "int64"

// Node kinds. X(name, comment)
#define ATTNC_IR_KINDS(X)                                                                                             \
  X(Const, "literal: int_value for Bool/Int/Int64, float_value for Float")                                            \
  X(Builtin, "built-in variable `builtin`")                                                                           \
  X(Param, "scalar parameter #index")                                                                                 \
  X(Extent, "extent of tensor parameter #index along dimension #dim (Int)")                                           \
  X(TensorRef, "tensor parameter #index passed whole to a ModCall; nowhere else")                                     \
  X(Cast, "operand 0 converted to `type`")                                                                            \
  X(Unary, "op operand0 (Neg, Not)")                                                                                  \
  X(Binary, "operand0 op operand1")                                                                                   \
  X(Select, "operand0 ? operand1 : operand2 (both sides evaluated)")                                                  \
  X(Call, "math function op(operands)")                                                                               \
  X(Load, "tensor parameter #index at operands (one Int per dimension), clamped")                                     \
  X(LoadRange,                                                                                                        \
    "op (Min/Max) of tensor #index over the box lo=operands[0..r), hi=operands[r..2r) (inclusive, Int64), or over a " \
    "box containing it")                                                                                              \
  X(ModCall, "call of earlier definition #index of the module; inline_calls removes it")

enum class Kind : uint8_t {
#define ATTNC_X(name, comment) name,
  ATTNC_IR_KINDS(ATTNC_X)
#undef ATTNC_X
};

// Operators and math functions. X(name, spelling, arity, commutative)
#define ATTNC_IR_OPS(X)           \
  X(None, "", 0, false)           \
  X(Neg, "-", 1, false)           \
  X(Not, "!", 1, false)           \
  X(Add, "+", 2, true)            \
  X(Sub, "-", 2, false)           \
  X(Mul, "*", 2, true)            \
  X(Div, "/", 2, false)           \
  X(Mod, "%", 2, false)           \
  X(Min, "min", 2, true)          \
  X(Max, "max", 2, true)          \
  X(Lt, "<", 2, false)            \
  X(Le, "<=", 2, false)           \
  X(Gt, ">", 2, false)            \
  X(Ge, ">=", 2, false)           \
  X(Eq, "==", 2, true)            \
  X(Ne, "!=", 2, true)            \
  X(And, "&&", 2, true)           \
  X(Or, "||", 2, true)            \
  X(Abs, "abs", 1, false)         \
  X(Exp, "exp", 1, false)         \
  X(Exp2, "exp2", 1, false)       \
  X(Log, "log", 1, false)         \
  X(Log2, "log2", 1, false)       \
  X(Sqrt, "sqrt", 1, false)       \
  X(Rsqrt, "rsqrt", 1, false)     \
  X(Tanh, "tanh", 1, false)       \
  X(Sigmoid, "sigmoid", 1, false) \
  X(Sin, "sin", 1, false)         \
  X(Cos, "cos", 1, false)         \
  X(Floor, "floor", 1, false)     \
  X(Ceil, "ceil", 1, false)       \
  X(Round, "round", 1, false)     \
  X(Pow, "pow", 2, false)

enum class Op : uint8_t {
#define ATTNC_X(name, spelling, arity, commutative) name,
  ATTNC_IR_OPS(ATTNC_X)
#undef ATTNC_X
};

const char* kind_name(Kind kind);
const char* op_spelling(Op op);
int op_arity(Op op);
bool op_is_commutative(Op op);
bool op_is_comparison(Op op);  // Lt Le Gt Ge Eq Ne
bool op_is_binary(Op op);      // the operators a Binary node may carry
bool op_is_function(Op op);    // the ops a Call node may carry (Abs .. Pow)

// Built-in variables. X(name, spelling, type). The Tile* bounds exist only in tile-classifier IR.
#define ATTNC_IR_BUILTINS(X)           \
  X(Score, "score", Float)             \
  X(Batch, "b", Int)                   \
  X(Head, "h", Int)                    \
  X(QIdx, "q_idx", Int)                \
  X(KvIdx, "kv_idx", Int)              \
  X(QLen, "q_len", Int)                \
  X(KvLen, "kv_len", Int)              \
  X(NumHeads, "num_heads", Int)        \
  X(NumKvHeads, "num_kv_heads", Int)   \
  X(QTileFirst, "q_tile_first", Int)   \
  X(QTileLast, "q_tile_last", Int)     \
  X(KvTileFirst, "kv_tile_first", Int) \
  X(KvTileLast, "kv_tile_last", Int)

enum class Builtin : uint8_t {
#define ATTNC_X(name, spelling, type) name,
  ATTNC_IR_BUILTINS(ATTNC_X)
#undef ATTNC_X
};

constexpr int kBuiltinCount = 0
#define ATTNC_X(name, spelling, type) +1
    ATTNC_IR_BUILTINS(ATTNC_X)
#undef ATTNC_X
    ;

const char* builtin_spelling(Builtin builtin);
Type builtin_type(Builtin builtin);

struct Node;
using Expr = std::shared_ptr<const Node>;

struct Node {
  Node() = default;
  Node(Node&&) = default;
  Node(const Node&) = default;
  Node& operator=(Node&&) = default;
  Node& operator=(const Node&) = default;
  // Frees the operands this node alone kept alive with an explicit work list, not by recursion, so a
  // chain of any length is freed in constant stack space.
  ~Node();

  Kind kind = Kind::Const;
  Type type = Type::Int;
  Op op = Op::None;                  // Unary, Binary, Call, LoadRange
  Builtin builtin = Builtin::Score;  // Builtin
  uint32_t index = 0;                // Param, Extent, TensorRef, Load, LoadRange, ModCall
  uint32_t dim = 0;                  // Extent
  int64_t int_value = 0;             // Const of Bool (0/1), Int, Int64
  float float_value = 0;             // Const of Float
  std::vector<Expr> operands;
  uint64_t hash = 0;  // structural hash: stable across runs, builds and machines

  bool is_const() const { return kind == Kind::Const; }
};

// Structural equality. Float constants compare by bits. Iterative, and it visits each pair of nodes
// once, so it takes time in the number of distinct nodes, not in the size of the tree a DAG stands
// for; pointer-equal nodes and nodes with different hashes are decided at once.
bool equal(const Expr& a, const Expr& b);

// A total order on expressions that depends only on structure (never on addresses): the fields of
// the roots, then the operands left to right, lexicographically. Iterative like `equal`.
bool structurally_less(const Expr& a, const Expr& b);

// ---- Construction. Each checks the node's invariants and throws InternalError when broken. ----
Expr make_bool(bool value);
Expr make_int(int32_t value);
Expr make_int64(int64_t value);
Expr make_float(float value);
Expr make_const(Type type, int64_t int_value, float float_value);
Expr make_builtin(Builtin builtin);
Expr make_param(uint32_t index, Type type);
Expr make_extent(uint32_t param, uint32_t dim);
Expr make_tensor_ref(uint32_t param, Type elem);
Expr make_cast(Type to, Expr value);  // returns value itself when it already has type `to`
Expr make_unary(Op op, Expr operand);
Expr make_binary(Op op, Expr lhs, Expr rhs);
Expr make_select(Expr condition, Expr if_true, Expr if_false);
Expr make_call(Op function, std::vector<Expr> args);
Expr make_load(uint32_t param, Type elem, std::vector<Expr> indices);
Expr make_load_range(Op min_or_max, uint32_t param, Type elem, std::vector<Expr> first, std::vector<Expr> last);
Expr make_mod_call(uint32_t definition, Type result, std::vector<Expr> args);

// The same node with other operands; returns `node` itself when every operand is the same object,
// so a pass that changes nothing returns its input.
Expr with_operands(const Expr& node, std::vector<Expr> operands);

// Convenience for passes and tests.
inline bool is_const_int(const Expr& e, int64_t value) {
  return e->kind == Kind::Const && (e->type == Type::Int || e->type == Type::Int64) && e->int_value == value;
}
inline bool is_const_bool(const Expr& e, bool value) {
  return e->kind == Kind::Const && e->type == Type::Bool && e->int_value == (value ? 1 : 0);
}

}  // namespace attnc::ir
