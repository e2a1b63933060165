#include "runtime/core/ModSpec.h"

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

ModSpec ModSpec::of(const Mod* mod) {
  if (mod == nullptr) return {};
  return ModSpec{mod->shared_def(), mod->storage_types()};
}

ModSpec ModSpec::of(const Mod& mod, const std::map<std::string, DType>& storage) {
  ModSpec spec = of(&mod);
  for (const auto& [name, dtype] : storage) {
    std::optional<uint32_t> index = mod.def().find_param(name);
    if (!index) continue;
    const ir::ParamDecl& param = mod.def().params[*index];
    if (!param.is_tensor()) {
      throw RuntimeError(fmt::format("{}: parameter '{}' is a scalar {}; only tensors have a storage type",
                                     mod.describe(), name, ir::type_name(param.elem)));
    }
    if (!ir::storage_fits(param.elem, dtype)) {
      throw RuntimeError(fmt::format("{}: parameter '{}' holds {} elements; {} cannot store them", mod.describe(), name,
                                     ir::type_name(param.elem), dtype_name(dtype)));
    }
    spec.storage[*index] = dtype;
  }
  return spec;
}

std::optional<ir::Signature> ModSpec::signature() const {
  if (!def) return std::nullopt;
  return ir::compute_signature(*def, storage);
}

std::string ModSpec::signature_text() const {
  const std::optional<ir::Signature> sig = signature();
  return sig ? sig->hex() : "none";
}

void ModSpec::check_kind(dsl::ModKind kind, const char* kernel) const {
  if (def && def->kind != kind) {
    throw RuntimeError(fmt::format("{}: mod '{}' is not a {}", kernel, def->name,
                                   kind == dsl::ModKind::Score ? "score mod" : "mask mod"));
  }
}

bool ModSpec::declares(const std::string& name) const { return def && def->find_param(name).has_value(); }

}  // namespace attnc
