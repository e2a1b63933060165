#include "compiler/IR.h"

#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <functional>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "compiler/StableHash.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

struct OpInfo {
  const char* spelling;
  int arity;
  bool commutative;
};

constexpr OpInfo kOps[] = {
#define ATTNC_X(name, spelling, arity, commutative) {spelling, arity, commutative},
    ATTNC_IR_OPS(ATTNC_X)
#undef ATTNC_X
};

constexpr const char* kKindNames[] = {
#define ATTNC_X(name, comment) #name,
    ATTNC_IR_KINDS(ATTNC_X)
#undef ATTNC_X
};

struct BuiltinInfo {
  const char* spelling;
  Type type;
};

constexpr BuiltinInfo kBuiltins[] = {
#define ATTNC_X(name, spelling, type) {spelling, Type::type},
    ATTNC_IR_BUILTINS(ATTNC_X)
#undef ATTNC_X
};

uint32_t float_bits(float f) { return std::bit_cast<uint32_t>(f); }

// Fills in the structural hash and freezes the node.
Expr finish(Node node) {
  StableHash64 h;
  h.u64(static_cast<uint64_t>(node.kind))
      .u64(static_cast<uint64_t>(node.type))
      .u64(static_cast<uint64_t>(node.op))
      .u64(static_cast<uint64_t>(node.builtin))
      .u64(node.index)
      .u64(node.dim)
      .u64(static_cast<uint64_t>(node.int_value))
      .u64(float_bits(node.float_value))
      .u64(node.operands.size());
  for (const Expr& operand : node.operands) h.u64(operand->hash);
  node.hash = h.value();
  // Created non-const so that ~Node may take apart the operands it alone owns (see there).
  return std::make_shared<Node>(std::move(node));
}

bool is_numeric(Type t) { return t == Type::Int || t == Type::Float || t == Type::Int64; }

void require(bool condition, const char* what) { ATTNC_ASSERT(condition, what); }

}  // namespace

const char* type_name(Type type) {
  switch (type) {
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::Int64: return "int64";
  }
  return "?";
}

const char* kind_name(Kind kind) { return kKindNames[static_cast<int>(kind)]; }
const char* op_spelling(Op op) { return kOps[static_cast<int>(op)].spelling; }
int op_arity(Op op) { return kOps[static_cast<int>(op)].arity; }
bool op_is_commutative(Op op) { return kOps[static_cast<int>(op)].commutative; }
bool op_is_comparison(Op op) { return op >= Op::Lt && op <= Op::Ne; }
bool op_is_binary(Op op) { return op >= Op::Add && op <= Op::Or; }
bool op_is_function(Op op) { return op >= Op::Abs && op <= Op::Pow; }
const char* builtin_spelling(Builtin b) { return kBuiltins[static_cast<int>(b)].spelling; }
Type builtin_type(Builtin b) { return kBuiltins[static_cast<int>(b)].type; }

Node::~Node() {
  if (operands.empty()) return;
  // Operands that only this node keeps alive are taken apart here before they are released: their
  // own operands join the work list, so releasing them never runs more than one destructor deep.
  std::vector<Expr> pending = std::move(operands);
  while (!pending.empty()) {
    Expr last = std::move(pending.back());
    pending.pop_back();
    // use_count() == 1 is exact here: no other owner exists that could hand out a new reference.
    // The fence orders this thread's writes after another thread's last use of the node, as the
    // final release of a shared_ptr does. Nodes are created non-const (finish() below), so taking
    // their operands is defined.
    if (last.use_count() == 1 && !last->operands.empty()) {
      std::atomic_thread_fence(std::memory_order_acquire);
      auto& inner = const_cast<Node&>(*last).operands;
      for (Expr& operand : inner) pending.push_back(std::move(operand));
      inner.clear();
    }
  }
}

namespace {

// -1, 0 or 1 as the fields of `a` (everything but the operands themselves) order before, equal to
// or after those of `b`.
int compare_fields(const Node& a, const Node& b) {
  auto key = [](const Node& e) {
    return std::tuple(static_cast<int>(e.kind), static_cast<int>(e.type), static_cast<int>(e.op),
                      static_cast<int>(e.builtin), e.index, e.dim, e.int_value, float_bits(e.float_value),
                      e.operands.size());
  };
  auto ka = key(a), kb = key(b);
  if (ka < kb) return -1;
  if (kb < ka) return 1;
  return 0;
}

struct NodePairHash {
  size_t operator()(const std::pair<const Node*, const Node*>& p) const {
    return std::hash<const Node*>()(p.first) * 31 + std::hash<const Node*>()(p.second);
  }
};

// Walks `a` and `b` in lockstep, operands left to right, and returns `differ` of the first pair of
// nodes whose fields differ (0 when the two are structurally equal). Explicit stack, so depth costs
// no call stack; pairs found equal are remembered, so a shared pair is walked once however many
// paths reach it. (Only looked up, never iterated: addresses cannot leak into the result.)
template <typename Differ>
int compare_in_lockstep(const Expr& a, const Expr& b, Differ&& differ) {
  if (a == b) return 0;
  if (int c = differ(*a, *b)) return c;
  struct Frame {
    const Expr* a;
    const Expr* b;
    size_t next;
  };
  // Most comparisons end a few levels down: the first frames live here, deeper ones on the heap.
  constexpr size_t kInlineFrames = 16;
  std::array<Frame, kInlineFrames> shallow;
  std::vector<Frame> deep;
  size_t depth = 0;
  auto frame = [&](size_t i) -> Frame& { return i < kInlineFrames ? shallow[i] : deep[i - kInlineFrames]; };
  auto push = [&](Frame f) {
    if (depth < kInlineFrames) {
      shallow[depth] = f;
    } else if (deep.size() > depth - kInlineFrames) {
      deep[depth - kInlineFrames] = f;
    } else {
      deep.push_back(f);
    }
    ++depth;
  };
  push({&a, &b, 0});
  std::unordered_set<std::pair<const Node*, const Node*>, NodePairHash> known_equal;
  while (depth > 0) {
    Frame& top = frame(depth - 1);
    const Node& top_a = **top.a;
    if (top.next == top_a.operands.size()) {
      // Only a node with several owners can be reached again along another path.
      if (top.a->use_count() > 1 || top.b->use_count() > 1) known_equal.emplace(top.a->get(), top.b->get());
      --depth;
      continue;
    }
    const Expr& x = top_a.operands[top.next];
    const Expr& y = (*top.b)->operands[top.next];
    ++top.next;
    if (x == y || (!known_equal.empty() && known_equal.count({x.get(), y.get()}))) continue;
    if (int c = differ(*x, *y)) return c;
    if (!x->operands.empty()) push({&x, &y, 0});
  }
  return 0;
}

}  // namespace

bool equal(const Expr& a, const Expr& b) {
  // Equal structure has equal hashes, so a hash mismatch anywhere settles it.
  return compare_in_lockstep(a, b, [](const Node& x, const Node& y) {
           if (x.hash != y.hash) return 1;
           return compare_fields(x, y);
         }) == 0;
}

bool structurally_less(const Expr& a, const Expr& b) { return compare_in_lockstep(a, b, compare_fields) < 0; }

Expr make_const(Type type, int64_t int_value, float float_value) {
  Node n;
  n.kind = Kind::Const;
  n.type = type;
  switch (type) {
    case Type::Bool:
      require(int_value == 0 || int_value == 1, "bool constant must be 0 or 1");
      n.int_value = int_value;
      break;
    case Type::Int:
      require(int_value >= INT32_MIN && int_value <= INT32_MAX, "int constant out of range");
      n.int_value = int_value;
      break;
    case Type::Int64: n.int_value = int_value; break;
    case Type::Float: n.float_value = float_value; break;
  }
  return finish(std::move(n));
}

Expr make_bool(bool value) { return make_const(Type::Bool, value ? 1 : 0, 0); }
Expr make_int(int32_t value) { return make_const(Type::Int, value, 0); }
Expr make_int64(int64_t value) { return make_const(Type::Int64, value, 0); }
Expr make_float(float value) { return make_const(Type::Float, 0, value); }

Expr make_builtin(Builtin builtin) {
  Node n;
  n.kind = Kind::Builtin;
  n.builtin = builtin;
  n.type = builtin_type(builtin);
  return finish(std::move(n));
}

Expr make_param(uint32_t index, Type type) {
  require(type != Type::Int64, "parameters are bool, int or float");
  Node n;
  n.kind = Kind::Param;
  n.index = index;
  n.type = type;
  return finish(std::move(n));
}

Expr make_extent(uint32_t param, uint32_t dim) {
  Node n;
  n.kind = Kind::Extent;
  n.index = param;
  n.dim = dim;
  n.type = Type::Int;
  return finish(std::move(n));
}

Expr make_tensor_ref(uint32_t param, Type elem) {
  require(elem != Type::Int64, "tensor elements are bool, int or float");
  Node n;
  n.kind = Kind::TensorRef;
  n.index = param;
  n.type = elem;
  return finish(std::move(n));
}

Expr make_cast(Type to, Expr value) {
  require(value != nullptr, "cast of null");
  require(value->kind != Kind::TensorRef, "a tensor is not a value");
  if (value->type == to) return value;
  Node n;
  n.kind = Kind::Cast;
  n.type = to;
  n.operands = {std::move(value)};
  return finish(std::move(n));
}

Expr make_unary(Op op, Expr operand) {
  require(operand != nullptr, "unary of null");
  if (op == Op::Neg) {
    require(is_numeric(operand->type), "negation needs a number");
  } else {
    require(op == Op::Not && operand->type == Type::Bool, "unary op must be Neg, or Not of bool");
  }
  Node n;
  n.kind = Kind::Unary;
  n.op = op;
  n.type = operand->type;
  n.operands = {std::move(operand)};
  return finish(std::move(n));
}

Expr make_binary(Op op, Expr lhs, Expr rhs) {
  require(lhs && rhs, "binary of null");
  require(op_is_binary(op), "not a binary operator");
  require(lhs->type == rhs->type, "binary operands must have one type");
  Node n;
  n.kind = Kind::Binary;
  n.op = op;
  if (op == Op::And || op == Op::Or) {
    require(lhs->type == Type::Bool, "&& and || take bools");
    n.type = Type::Bool;
  } else if (op == Op::Eq || op == Op::Ne) {
    n.type = Type::Bool;
  } else if (op_is_comparison(op)) {
    require(is_numeric(lhs->type), "ordering compares numbers");
    n.type = Type::Bool;
  } else {
    require(is_numeric(lhs->type), "arithmetic takes numbers");
    n.type = lhs->type;
  }
  n.operands = {std::move(lhs), std::move(rhs)};
  return finish(std::move(n));
}

Expr make_select(Expr condition, Expr if_true, Expr if_false) {
  require(condition && if_true && if_false, "select of null");
  require(condition->type == Type::Bool, "select condition must be bool");
  require(if_true->type == if_false->type, "select arms must have one type");
  Node n;
  n.kind = Kind::Select;
  n.type = if_true->type;
  n.operands = {std::move(condition), std::move(if_true), std::move(if_false)};
  return finish(std::move(n));
}

Expr make_call(Op function, std::vector<Expr> args) {
  require(op_is_function(function), "not a math function");
  require(static_cast<int>(args.size()) == op_arity(function), "wrong number of arguments");
  for (const Expr& a : args) require(a != nullptr, "call of null");
  Node n;
  n.kind = Kind::Call;
  n.op = function;
  if (function == Op::Abs) {
    require(is_numeric(args[0]->type), "abs takes a number");
    n.type = args[0]->type;
  } else {
    for (const Expr& a : args) require(a->type == Type::Float, "math functions take floats");
    n.type = Type::Float;
  }
  n.operands = std::move(args);
  return finish(std::move(n));
}

Expr make_load(uint32_t param, Type elem, std::vector<Expr> indices) {
  require(elem != Type::Int64, "tensor elements are bool, int or float");
  require(!indices.empty(), "a load needs at least one index");
  for (const Expr& i : indices) require(i && i->type == Type::Int, "tensor indices are ints");
  Node n;
  n.kind = Kind::Load;
  n.index = param;
  n.type = elem;
  n.operands = std::move(indices);
  return finish(std::move(n));
}

Expr make_load_range(Op min_or_max, uint32_t param, Type elem, std::vector<Expr> first, std::vector<Expr> last) {
  require(min_or_max == Op::Min || min_or_max == Op::Max, "a range load takes Min or Max");
  require(elem == Type::Int || elem == Type::Float, "range summaries exist for int and float tensors");
  require(!first.empty() && first.size() == last.size(), "a range load needs one first and last per dimension");
  Node n;
  n.kind = Kind::LoadRange;
  n.op = min_or_max;
  n.index = param;
  n.type = elem;
  for (Expr& e : first) {
    require(e && e->type == Type::Int64, "range bounds are int64");
    n.operands.push_back(std::move(e));
  }
  for (Expr& e : last) {
    require(e && e->type == Type::Int64, "range bounds are int64");
    n.operands.push_back(std::move(e));
  }
  return finish(std::move(n));
}

Expr make_mod_call(uint32_t definition, Type result, std::vector<Expr> args) {
  require(result == Type::Bool || result == Type::Float, "mods return bool or float");
  for (const Expr& a : args) require(a != nullptr, "call of null");
  Node n;
  n.kind = Kind::ModCall;
  n.index = definition;
  n.type = result;
  n.operands = std::move(args);
  return finish(std::move(n));
}

Expr with_operands(const Expr& node, std::vector<Expr> operands) {
  ATTNC_ASSERT(operands.size() == node->operands.size(), "with_operands changes the arity");
  bool same = true;
  for (size_t i = 0; i < operands.size(); ++i) same = same && operands[i] == node->operands[i];
  if (same) return node;
  switch (node->kind) {
    case Kind::Cast: return make_cast(node->type, std::move(operands[0]));
    case Kind::Unary: return make_unary(node->op, std::move(operands[0]));
    case Kind::Binary: return make_binary(node->op, std::move(operands[0]), std::move(operands[1]));
    case Kind::Select: return make_select(std::move(operands[0]), std::move(operands[1]), std::move(operands[2]));
    case Kind::Call: return make_call(node->op, std::move(operands));
    case Kind::Load: return make_load(node->index, node->type, std::move(operands));
    case Kind::LoadRange: {
      size_t rank = operands.size() / 2;
      std::vector<Expr> first(operands.begin(), operands.begin() + rank);
      std::vector<Expr> last(operands.begin() + rank, operands.end());
      return make_load_range(node->op, node->index, node->type, std::move(first), std::move(last));
    }
    case Kind::ModCall: return make_mod_call(node->index, node->type, std::move(operands));
    default: ATTNC_ASSERT(false, std::string("leaf node has no operands: ") + kind_name(node->kind));
  }
  return node;
}

}  // namespace attnc::ir
