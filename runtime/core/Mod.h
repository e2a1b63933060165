#pragma once
// A mod ready to run: the optimised, self-contained definition (compiler/Pipeline.h) plus the
// arguments bound to its parameters so far. Scalars are kept as ir::Values of the parameter's
// type, tensors as runtime Tensors (so a Mod keeps the tensors it uses alive). Mods are values:
// copies share the immutable definition and the tensors' storage, and bind() on a copy leaves the
// original alone.
//
// Binding checks every argument against the declaration and throws RuntimeError naming the mod and
// the parameter: unknown names, scalar type mismatches (an int converts to a float parameter when
// exactly representable; a float never converts to an int, nor anything to or from bool), tensor
// rank, element class (float: fp32/fp16/bf16; int: int32/int64; bool: bool/uint8), literal
// extents, and extents that share a name across (or within) tensor parameters.

#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "compiler/Interpreter.h"
#include "compiler/Module.h"
#include "compiler/Signature.h"
#include "runtime/core/Tensor.h"

namespace attnc {

class Mod {
 public:
  using Argument = std::variant<ir::Value, Tensor>;

  // Definition `name` of `module`, optimised. RuntimeError listing the available names when missing.
  static Mod from_module(const ir::Module& module, const std::string& name);
  // A mod from a definition that calls no other definition (no ModCall nodes), e.g. one built by
  // composition (runtime/core/Mods.h). It is optimised here.
  static Mod from_def(const ir::ModDef& def);

  // Binds scalar parameter `name`. The returned reference allows chaining: m.bind("a", 1).bind(...).
  Mod& bind(const std::string& name, int32_t value);
  Mod& bind(const std::string& name, int64_t value);  // must fit an int32 (or be exact as a float)
  Mod& bind(const std::string& name, float value);
  Mod& bind(const std::string& name, double value);  // narrowed to float; refused for int parameters
  Mod& bind(const std::string& name, bool value);
  Mod& bind(const std::string& name, const char* value) = delete;  // would silently become a bool
  // Binds tensor parameter `name`. The tensor may be on any device; the CPU paths (interpreter,
  // reference attention) refuse non-CPU tensors when they run.
  Mod& bind(const std::string& name, Tensor value);
  // Binds whatever `argument` holds (used when composition carries arguments over).
  Mod& bind(const std::string& name, const Argument& argument);

  bool is_bound(const std::string& name) const;
  bool fully_bound() const;
  std::vector<std::string> unbound_params() const;

  dsl::ModKind kind() const { return def_->kind; }
  const std::string& name() const { return def_->name; }
  const ir::ModDef& def() const { return *def_; }
  // The same definition, shared (kernel specs keep it without copying).
  const std::shared_ptr<const ir::ModDef>& shared_def() const { return def_; }
  // The argument of parameter #index (as in def().params), if bound.
  const std::optional<Argument>& argument(size_t index) const { return args_.at(index); }

  // Each parameter's storage type: the bound tensor's dtype, the default for unbound tensor
  // parameters (ir::default_storage), and a placeholder for scalars (ignored by signatures).
  std::vector<DType> storage_types() const;
  // The kernel cache key: ir::compute_signature of the definition with storage_types().
  ir::Signature signature() const;

  // Fills env.params for the interpreter. RuntimeError when a parameter is unbound or a bound tensor
  // is not on the CPU.
  void bind_into(ir::Environment& env) const;
  // An environment with the call's sizes set and the parameters bound (the point is left at zero).
  ir::Environment environment(int32_t q_len, int32_t kv_len, int32_t num_heads, int32_t num_kv_heads,
                              bool check_bounds = false) const;

  // "mod 'name'", the prefix of every message about this mod.
  std::string describe() const;

 private:
  Mod() = default;
  const ir::ParamDecl& param_for_binding(const std::string& name, uint32_t& index) const;
  // `value` is Int64 for integers of any width, Float or Bool; converts it to the parameter's type.
  Mod& bind_scalar(const std::string& name, ir::Value value);

  std::shared_ptr<const ir::ModDef> def_;
  std::vector<std::optional<Argument>> args_;  // indexed like def_->params
};

}  // namespace attnc
