#include "compiler/Module.h"

namespace attnc::ir {

std::optional<uint32_t> ModDef::find_param(const std::string& param_name) const {
  for (uint32_t i = 0; i < params.size(); ++i) {
    if (params[i].name == param_name) return i;
  }
  return std::nullopt;
}

const ModDef* Module::find(const std::string& name) const {
  for (const ModDef& def : defs) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

std::vector<std::string> Module::names() const {
  std::vector<std::string> out;
  for (const ModDef& def : defs) out.push_back(def.name);
  return out;
}

}  // namespace attnc::ir
