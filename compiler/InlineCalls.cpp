#include "compiler/InlineCalls.h"

#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "compiler/IRMutator.h"
#include "compiler/Limits.h"
#include "compiler/ShareSubexpressions.h"
#include "compiler/Substitute.h"
#include "dsl/Diagnostics.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

// One call site after substitution: the callee and its arguments, which are interned, so equal
// arguments are equal addresses. Only looked up, never iterated.
struct CallKey {
  uint32_t callee = 0;
  std::vector<const Node*> args;
  const Node* score = nullptr;  // what `score` reads in a mask callee (see push_expansion)
  bool operator==(const CallKey&) const = default;
};

struct CallKeyHash {
  size_t operator()(const CallKey& key) const {
    size_t h = key.callee ^ (key.score ? key.score->hash : 0);
    for (const Node* arg : key.args) h = h * 1000003u ^ arg->hash;
    return h;
  }
};

// Inlining as one walk with an explicit stack of expansions, so that a chain of definitions of any
// length costs no call stack. An expansion rewrites one definition's own body (not its inlined
// body) under one call's arguments; a ModCall met on the way becomes a new expansion of the callee
// under the call's rewritten arguments, unless that same call was expanded already. Every node built
// is interned, so the result is a DAG in which equal structure is one node, and a call is expanded
// once per distinct (callee, arguments): the work is bounded by the size of the result, not by the
// size of the tree it stands for. That size is capped at kMaxInlinedNodes.
class Inliner {
 public:
  Inliner(const Module& module, const ModDef& def)
      : module_(module), def_(def), tapes_(module.defs.size()), on_stack_(module.defs.size(), false) {}

  Expr run() {
    // The root expansion is the definition itself: its parameters and score stay as they are.
    root_tape_ = std::make_unique<Tape>(def_.body);
    stack_.push_back(Expansion(*root_tape_));
    Expr result;
    while (!stack_.empty()) {
      if (step()) continue;
      Expansion done = std::move(stack_.back());
      stack_.pop_back();
      Expr value = std::move(done.rewritten.back());  // the root comes last in post-order
      if (done.callee) on_stack_[*done.callee] = false;
      if (stack_.empty()) {
        result = std::move(value);
      } else {
        expansions_.emplace(std::move(done.key), std::move(value));
      }
    }
    return result;
  }

 private:
  // A body's distinct nodes in post-order with their positions, built once per definition, so an
  // expansion finds its operands' rewritten values by position.
  using Tape = PostOrder;

  struct Expansion {
    explicit Expansion(const Tape& tape) : tape(&tape) { rewritten.reserve(tape.nodes.size()); }
    const Tape* tape;                // the body being rewritten
    std::vector<Expr> rewritten;     // the rewritten nodes of the tape so far, in its order
    Substitution substitution;       // empty for the root
    std::optional<uint32_t> callee;  // the definition expanded (none for the root)
    CallKey key;                     // the call this expansion answers
  };

  // The tape of definition `index`'s body, built when the definition is first expanded.
  const Tape& tape_of(uint32_t index) {
    if (!tapes_[index]) tapes_[index] = std::make_unique<Tape>(module_.defs[index].body);
    return *tapes_[index];
  }

  // Rewrites nodes of the top expansion until it is done (returns false) or it needs a call expanded
  // first (pushes that expansion and returns true).
  bool step() {
    Expansion& top = stack_.back();
    const Tape& tape = *top.tape;
    while (top.rewritten.size() < tape.nodes.size()) {
      const size_t at = top.rewritten.size();
      const Expr& node = *tape.nodes[at];
      std::vector<Expr> operands;
      operands.reserve(node->operands.size());
      for (const Expr& operand : node->operands) operands.push_back(top.rewritten[tape.position.find(operand.get())]);
      Expr value;
      if (node->kind == Kind::ModCall) {
        CallKey key{node->index, {}, nullptr};
        for (const Expr& arg : operands) key.args.push_back(arg.get());
        if (module_.defs[node->index].kind == ModKind::Mask && top.substitution.score) {
          key.score = top.substitution.score->get();
        }
        auto found = expansions_.find(key);
        if (found == expansions_.end()) {
          push_expansion(node, std::move(operands), std::move(key));
          return true;
        }
        value = found->second;
      } else {
        value = intern(substitute_node(with_operands(node, std::move(operands)), top.substitution));
      }
      top.rewritten.push_back(std::move(value));
    }
    return false;
  }

  // Starts expanding the callee of `call` at its rewritten arguments `args`.
  void push_expansion(const Expr& call, std::vector<Expr> args, CallKey key) {
    ATTNC_ASSERT(call->index < module_.defs.size(), "mod call of a definition outside the module");
    const ModDef& callee = module_.defs[call->index];
    // Only earlier definitions are visible to a mod, so a cycle means the type checker is broken.
    ATTNC_ASSERT(!on_stack_[call->index], "recursive mod call of " + callee.name);
    const size_t first_param_arg = callee.kind == ModKind::Score ? 1 : 0;
    ATTNC_ASSERT(args.size() == first_param_arg + callee.params.size(),
                 "mod call of " + callee.name + " has the wrong number of arguments");
    ATTNC_ASSERT(call->type == callee.body->type, "mod call of " + callee.name + " has the wrong type");

    // Scalar parameters read the call's arguments; tensor parameters become the caller's tensors
    // named by the TensorRef arguments; a score mod's `score` reads the first argument.
    Expansion expansion(tape_of(call->index));
    Substitution& substitution = expansion.substitution;
    // A score mod's `score` is its first argument. A mask mod has no score of its own (the type
    // checker refuses one), but IR built otherwise may read it; it then reads the caller's, exactly
    // as if the callee's body were written out in the caller.
    if (callee.kind == ModKind::Score) {
      substitution.score = args[0];
    } else {
      substitution.score = stack_.back().substitution.score;
    }
    substitution.scalar_params.resize(callee.params.size());
    substitution.tensor_params.resize(callee.params.size());
    for (uint32_t i = 0; i < callee.params.size(); ++i) {
      const ParamDecl& param = callee.params[i];
      const Expr& arg = args[first_param_arg + i];
      if (param.is_tensor()) {
        ATTNC_ASSERT(arg->kind == Kind::TensorRef && arg->type == param.elem,
                     "tensor argument of " + callee.name + " is not a TensorRef of its element type");
        substitution.tensor_params[i] = arg->index;
      } else {
        ATTNC_ASSERT(arg->kind != Kind::TensorRef && arg->type == param.elem,
                     "scalar argument of " + callee.name + " has the wrong type");
        substitution.scalar_params[i] = arg;
        substitution.tensor_params[i] = i;  // unused: a scalar parameter has no loads or extents
      }
    }
    expansion.callee = call->index;
    expansion.key = std::move(key);
    on_stack_[call->index] = true;
    stack_.push_back(std::move(expansion));
  }

  // The first node built that is structurally equal to `node`, or `node` itself when it is new.
  Expr intern(const Expr& node) {
    Expr interned = interned_.intern(node);
    if (interned_.size() > kMaxInlinedNodes) too_large();
    return interned;
  }

  [[noreturn]] void too_large() const {
    dsl::DiagnosticEngine diagnostics(module_.source);
    diagnostics.error(def_.range, fmt::format("'{}' is too large to compile: inlining its calls makes more than {} "
                                              "distinct subexpressions (the limit)",
                                              def_.name, kMaxInlinedNodes));
    throw dsl::CompileError(diagnostics.diagnostics());
  }

  const Module& module_;
  const ModDef& def_;
  std::unique_ptr<Tape> root_tape_;
  std::vector<std::unique_ptr<Tape>> tapes_;  // per definition, built when first expanded
  std::vector<bool> on_stack_;
  std::vector<Expansion> stack_;
  std::unordered_map<CallKey, Expr, CallKeyHash> expansions_;  // lookup only
  InternTable interned_;
};

bool has_calls(const Expr& body) {
  bool found = false;
  for_each_node(body, [&](const Expr& node) { found = found || node->kind == Kind::ModCall; });
  return found;
}

}  // namespace

ModDef inline_calls(const Module& module, const ModDef& def) {
  ModDef result = def;
  // A body without calls is already self-contained; it is returned as it is unless it is too large,
  // which the inliner's count (of distinct structure, not of objects) decides.
  if (!has_calls(def.body) && count_nodes(def.body) <= kMaxInlinedNodes) return result;
  result.body = Inliner(module, def).run();
  return result;
}

}  // namespace attnc::ir
