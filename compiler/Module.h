#pragma once
// A checked mod file: its definitions with typed IR bodies. Produced by compiler/TypeCheck.h;
// definitions may call earlier ones (ModCall) until compiler/InlineCalls.h inlines them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/IR.h"
#include "dsl/Ast.h"
#include "dsl/Source.h"

namespace attnc::ir {

using dsl::ModKind;

// One dimension of a tensor parameter: a named extent (usable as an Int in the body) or a literal.
struct TensorDim {
  std::string name;       // empty for a literal extent
  int64_t size = -1;      // the literal extent, or -1 for a named one
  // The canonical extent a named dimension stands for: the first (param, dim) that used the name.
  // Two parameters sharing a name must be bound to equal sizes.
  uint32_t first_param = 0;
  uint32_t first_dim = 0;
};

struct ParamDecl {
  std::string name;
  Type elem = Type::Int;         // Bool, Int or Float
  std::vector<TensorDim> dims;   // empty for a scalar parameter
  bool is_tensor() const { return !dims.empty(); }
  size_t rank() const { return dims.size(); }
};

struct ModDef {
  std::string name;
  ModKind kind = ModKind::Mask;
  std::vector<ParamDecl> params;
  Expr body;                    // Bool for a mask mod, Float for a score mod
  dsl::SourceRange range;       // where it was defined (empty for built-ins made in C++)

  std::optional<uint32_t> find_param(const std::string& param_name) const;
};

struct Module {
  std::shared_ptr<const dsl::SourceFile> source;
  std::vector<ModDef> defs;

  const ModDef* find(const std::string& name) const;
  // The names of all definitions, for "did you mean" suggestions.
  std::vector<std::string> names() const;
};

}  // namespace attnc::ir
