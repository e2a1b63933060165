#include "compiler/InlineCalls.h"

#include <optional>
#include <vector>

#include "compiler/IRMutator.h"
#include "compiler/Substitute.h"
#include "dsl/Errors.h"

namespace attnc::ir {

namespace {

class Inliner {
 public:
  explicit Inliner(const Module& module)
      : module_(module), inlined_(module.defs.size()), in_progress_(module.defs.size(), false) {}

  // `body` with every ModCall replaced by the inlined callee.
  Expr inline_body(const Expr& body) {
    return rewrite_bottom_up(body, [&](const Expr& node) {
      if (node->kind != Kind::ModCall) return node;
      return expand_call(node);
    });
  }

 private:
  // The body of definition `index` with its own calls inlined; computed once per definition.
  const Expr& inlined_definition(uint32_t index) {
    ATTNC_ASSERT(index < module_.defs.size(), "mod call of a definition outside the module");
    if (!inlined_[index]) {
      // Only earlier definitions are visible to a mod, so a cycle means the type checker is broken.
      ATTNC_ASSERT(!in_progress_[index], "recursive mod call of " + module_.defs[index].name);
      in_progress_[index] = true;
      inlined_[index] = inline_body(module_.defs[index].body);
      in_progress_[index] = false;
    }
    return *inlined_[index];
  }

  // The callee's inlined body rewritten to read the call's arguments instead of its own parameters.
  Expr expand_call(const Expr& call) {
    const ModDef& callee = module_.defs[call->index];
    const Expr& body = inlined_definition(call->index);
    const size_t first_param_arg = callee.kind == ModKind::Score ? 1 : 0;
    ATTNC_ASSERT(call->operands.size() == first_param_arg + callee.params.size(),
                 "mod call of " + callee.name + " has the wrong number of arguments");
    ATTNC_ASSERT(call->type == body->type, "mod call of " + callee.name + " has the wrong type");

    // Scalar parameters read the call's arguments; tensor parameters become the caller's tensors
    // named by the TensorRef arguments; a score mod's `score` reads the first argument.
    Substitution substitution;
    if (callee.kind == ModKind::Score) substitution.score = call->operands[0];
    substitution.scalar_params.resize(callee.params.size());
    substitution.tensor_params.resize(callee.params.size());
    for (uint32_t i = 0; i < callee.params.size(); ++i) {
      const ParamDecl& param = callee.params[i];
      const Expr& arg = call->operands[first_param_arg + i];
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
    return substitute(body, substitution);
  }

  const Module& module_;
  std::vector<std::optional<Expr>> inlined_;
  std::vector<bool> in_progress_;
};

}  // namespace

ModDef inline_calls(const Module& module, const ModDef& def) {
  ModDef result = def;
  result.body = Inliner(module).inline_body(def.body);
  return result;
}

}  // namespace attnc::ir
