#pragma once
// What a compiled kernel is specialised for about one mod: its optimised definition and the
// storage type of each tensor parameter, which together give its signature (compiler/Signature.h).
// Argument values are not part of it: they are launch arguments, so a different window or another
// document-id tensor of the same dtype reuses the kernel. Kernel families take ModSpecs so that
// `attnc warmup` (mods from files, storage from a manifest) and attention() (bound mods) ask for
// the same kernel in the same words.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "compiler/Module.h"
#include "compiler/Signature.h"
#include "runtime/core/Mod.h"

namespace attnc {

struct ModSpec {
  std::shared_ptr<const ir::ModDef> def;  // optimised; null: no mod
  std::vector<DType> storage;             // indexed like def->params (scalars' entries ignored)

  // The spec of `mod` (none when null): storage from its bound tensors, defaults for the rest.
  static ModSpec of(const Mod* mod);
  // The spec of `mod` with the tensor parameters named in `storage` stored as given, the others as
  // Mod::storage_types() says. Names `mod` does not declare are ignored (a caller giving storage
  // for two mods checks that every name was used, with declares()). RuntimeError when a name is a
  // scalar parameter or its storage cannot hold the parameter's elements.
  static ModSpec of(const Mod& mod, const std::map<std::string, DType>& storage);

  explicit operator bool() const { return def != nullptr; }
  const ir::ModDef* get() const { return def.get(); }
  // compute_signature(*def, storage); none without a mod.
  std::optional<ir::Signature> signature() const;
  // The signature as a kernel key field: its hex, or "none" without a mod.
  std::string signature_text() const;
  // Throws RuntimeError "<kernel>: mod 'NAME' is not a score mod" (or mask mod) when the mod is
  // not of `kind`; nothing without a mod. Every family's planner checks its two mods so.
  void check_kind(dsl::ModKind kind, const char* kernel) const;
  // Whether the mod declares a parameter `name`.
  bool declares(const std::string& name) const;
};

}  // namespace attnc
