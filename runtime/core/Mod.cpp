#include "runtime/core/Mod.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "compiler/Pipeline.h"
#include "compiler/Signature.h"
#include "dsl/Suggest.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// "slopes: float[H]", "window: int", "bias: float[B, 1, Q, K]"
std::string param_to_string(const ir::ParamDecl& param) {
  std::string out = param.name + ": " + ir::type_name(param.elem);
  if (!param.is_tensor()) return out;
  out += "[";
  for (size_t d = 0; d < param.dims.size(); ++d) {
    if (d) out += ", ";
    out += param.dims[d].size >= 0 ? std::to_string(param.dims[d].size) : param.dims[d].name;
  }
  return out + "]";
}

std::string params_to_string(const ir::ModDef& def) {
  if (def.params.empty()) return "it has no parameters";
  std::string out = "its parameters are ";
  for (size_t i = 0; i < def.params.size(); ++i) {
    if (i) out += ", ";
    out += param_to_string(def.params[i]);
  }
  return out;
}

const char* allowed_dtypes(ir::Type elem) {
  switch (elem) {
    case ir::Type::Float: return "fp32, fp16 or bf16";
    case ir::Type::Int: return "int32 or int64";
    case ir::Type::Bool: return "bool or uint8";
    default: return "nothing";
  }
}

std::string value_to_string(const ir::Value& value) {
  switch (value.type) {
    case ir::Type::Bool: return value.i ? "true" : "false";
    case ir::Type::Float: return fmt::format("the float {}", value.f);
    default: return fmt::format("the int {}", value.i);
  }
}

}  // namespace

Mod Mod::from_module(const ir::Module& module, const std::string& name) {
  const ir::ModDef* def = module.find(name);
  if (!def) {
    std::vector<std::string> names = module.names();
    std::string message = fmt::format("no mod named '{}'", name);
    if (auto suggestion = dsl::suggest_name(name, names)) message += fmt::format("; did you mean '{}'?", *suggestion);
    message +=
        names.empty() ? " (the module defines no mods)" : fmt::format(" (available: {})", fmt::join(names, ", "));
    throw RuntimeError(message);
  }
  Mod mod;
  mod.def_ = std::make_shared<const ir::ModDef>(ir::optimize(module, *def));
  mod.args_.resize(mod.def_->params.size());
  return mod;
}

Mod Mod::from_def(const ir::ModDef& def) {
  ir::Module module;
  module.defs.push_back(def);
  Mod mod;
  mod.def_ = std::make_shared<const ir::ModDef>(ir::optimize(module, module.defs.front()));
  mod.args_.resize(mod.def_->params.size());
  return mod;
}

std::string Mod::describe() const { return fmt::format("mod '{}'", def_->name); }

const ir::ParamDecl& Mod::param_for_binding(const std::string& name, uint32_t& index) const {
  std::optional<uint32_t> found = def_->find_param(name);
  if (!found) {
    std::vector<std::string> names;
    for (const ir::ParamDecl& p : def_->params) names.push_back(p.name);
    std::string message = fmt::format("{} has no parameter '{}'", describe(), name);
    if (auto suggestion = dsl::suggest_name(name, names)) message += fmt::format("; did you mean '{}'?", *suggestion);
    throw RuntimeError(fmt::format("{} ({})", message, params_to_string(*def_)));
  }
  index = *found;
  return def_->params[index];
}

Mod& Mod::bind_scalar(const std::string& name, ir::Value value) {
  uint32_t index = 0;
  const ir::ParamDecl& param = param_for_binding(name, index);
  auto refuse = [&](const std::string& why) -> Mod& {
    throw RuntimeError(fmt::format("{}: parameter '{}' cannot be bound to {}: {}", describe(), param_to_string(param),
                                   value_to_string(value), why));
  };
  if (param.is_tensor()) return refuse("it is a tensor parameter; bind a Tensor");
  ir::Value converted;
  switch (param.elem) {
    case ir::Type::Int:
      if (value.type == ir::Type::Float) return refuse("a float does not convert to an int parameter");
      if (value.type == ir::Type::Bool) return refuse("a bool does not convert to an int parameter");
      if (value.i < std::numeric_limits<int32_t>::min() || value.i > std::numeric_limits<int32_t>::max()) {
        return refuse("it does not fit a 32-bit int");
      }
      converted = ir::Value::of_int(static_cast<int32_t>(value.i));
      break;
    case ir::Type::Float:
      if (value.type == ir::Type::Bool) return refuse("a bool does not convert to a float parameter");
      if (value.type == ir::Type::Float) {
        converted = value;
      } else {
        float f = static_cast<float>(value.i);
        // Only exact conversions: 16777217 would silently become 16777216.
        if (static_cast<double>(f) != static_cast<double>(value.i)) return refuse("it is not exactly a float");
        converted = ir::Value::of_float(f);
      }
      break;
    case ir::Type::Bool:
      if (value.type != ir::Type::Bool) return refuse("a bool parameter takes only true or false");
      converted = value;
      break;
    default: return refuse("unsupported parameter type");
  }
  args_[index] = Argument(converted);
  return *this;
}

Mod& Mod::bind(const std::string& name, int32_t value) { return bind_scalar(name, ir::Value::of_int64(value)); }
Mod& Mod::bind(const std::string& name, int64_t value) { return bind_scalar(name, ir::Value::of_int64(value)); }
Mod& Mod::bind(const std::string& name, float value) { return bind_scalar(name, ir::Value::of_float(value)); }
Mod& Mod::bind(const std::string& name, double value) {
  return bind_scalar(name, ir::Value::of_float(static_cast<float>(value)));
}
Mod& Mod::bind(const std::string& name, bool value) { return bind_scalar(name, ir::Value::of_bool(value)); }

Mod& Mod::bind(const std::string& name, Tensor value) {
  uint32_t index = 0;
  const ir::ParamDecl& param = param_for_binding(name, index);
  auto refuse = [&](const std::string& why) -> Mod& {
    throw RuntimeError(fmt::format("{}: parameter '{}' cannot be bound to the tensor {}: {}", describe(),
                                   param_to_string(param), value.describe(), why));
  };
  if (!value.defined()) return refuse("the tensor is undefined");
  if (!param.is_tensor()) return refuse("it is a scalar parameter");
  if (value.rank() != param.rank()) {
    return refuse(fmt::format("the parameter has rank {}, the tensor rank {}", param.rank(), value.rank()));
  }
  if (!ir::storage_fits(param.elem, value.dtype())) {
    return refuse(fmt::format("{} {} tensor must be stored as {}", param.elem == ir::Type::Int ? "an" : "a",
                              ir::type_name(param.elem), allowed_dtypes(param.elem)));
  }
  for (size_t d = 0; d < param.rank(); ++d) {
    const ir::TensorDim& dim = param.dims[d];
    int64_t extent = value.shape()[d];
    if (extent == 0) {
      // Indices clamp into [0, extent); an empty dimension has nothing to clamp to.
      return refuse(fmt::format("dimension {} is empty; mod tensors need at least one element per dimension", d));
    }
    if (extent > std::numeric_limits<int32_t>::max()) {
      return refuse(fmt::format("dimension {} has extent {}, beyond the int range of mod indices", d, extent));
    }
    if (dim.size >= 0) {
      if (extent != dim.size)
        return refuse(fmt::format("dimension {} must have extent {}, not {}", d, dim.size, extent));
      continue;
    }
    // A named extent must agree with every other dimension of that name (in this tensor or others).
    for (size_t d2 = 0; d2 < d; ++d2) {
      if (param.dims[d2].name == dim.name && value.shape()[d2] != extent) {
        return refuse(fmt::format("extent '{}' is {} in dimension {} but {} in dimension {}", dim.name,
                                  value.shape()[d2], d2, extent, d));
      }
    }
    for (size_t other = 0; other < def_->params.size(); ++other) {
      if (other == index || !args_[other] || !std::holds_alternative<Tensor>(*args_[other])) continue;
      const ir::ParamDecl& other_param = def_->params[other];
      const Tensor& other_tensor = std::get<Tensor>(*args_[other]);
      for (size_t od = 0; od < other_param.rank(); ++od) {
        if (other_param.dims[od].size < 0 && other_param.dims[od].name == dim.name &&
            other_tensor.shape()[od] != extent) {
          return refuse(fmt::format("extent '{}' is {} here but {} in parameter '{}' (dimension {})", dim.name, extent,
                                    other_tensor.shape()[od], other_param.name, od));
        }
      }
    }
  }
  args_[index] = Argument(std::move(value));
  return *this;
}

Mod& Mod::bind(const std::string& name, const Argument& argument) {
  if (const Tensor* tensor = std::get_if<Tensor>(&argument)) return bind(name, *tensor);
  return bind_scalar(name, std::get<ir::Value>(argument));
}

bool Mod::is_bound(const std::string& name) const {
  std::optional<uint32_t> index = def_->find_param(name);
  return index && args_[*index].has_value();
}

bool Mod::fully_bound() const {
  for (const auto& arg : args_) {
    if (!arg) return false;
  }
  return true;
}

std::vector<std::string> Mod::unbound_params() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (!args_[i]) out.push_back(def_->params[i].name);
  }
  return out;
}

std::vector<DType> Mod::storage_types() const {
  std::vector<DType> out;
  for (size_t i = 0; i < args_.size(); ++i) {
    const ir::ParamDecl& param = def_->params[i];
    if (args_[i] && std::holds_alternative<Tensor>(*args_[i])) {
      out.push_back(std::get<Tensor>(*args_[i]).dtype());
    } else if (param.is_tensor()) {
      out.push_back(ir::default_storage(param.elem));
    } else {
      out.push_back(DType::F32);  // scalars: ignored by compute_signature
    }
  }
  return out;
}

ir::Signature Mod::signature() const {
  std::vector<DType> storage = storage_types();
  return ir::compute_signature(*def_, storage);
}

void Mod::bind_into(ir::Environment& env) const {
  std::vector<std::string> unbound = unbound_params();
  if (!unbound.empty()) {
    throw RuntimeError(fmt::format("{}: parameter{} {} not bound ({})", describe(), unbound.size() > 1 ? "s" : "",
                                   fmt::join(unbound, ", "), params_to_string(*def_)));
  }
  env.params.clear();
  env.params.reserve(args_.size());
  for (size_t i = 0; i < args_.size(); ++i) {
    if (const Tensor* tensor = std::get_if<Tensor>(&*args_[i])) {
      if (tensor->device() != Device::Cpu) {
        throw RuntimeError(fmt::format("{}: parameter '{}' is bound to a {} tensor; the CPU path needs it on the CPU",
                                       describe(), def_->params[i].name, device_name(tensor->device())));
      }
      env.params.emplace_back(tensor->to_interpreter_arg());
    } else {
      env.params.emplace_back(std::get<ir::Value>(*args_[i]));
    }
  }
}

ir::Environment Mod::environment(int32_t q_len, int32_t kv_len, int32_t num_heads, int32_t num_kv_heads,
                                 bool check_bounds) const {
  ir::Environment env;
  env.set_sizes(q_len, kv_len, num_heads, num_kv_heads);
  env.set_point(0, 0, 0, 0, 0.0f);
  env.check_bounds = check_bounds;
  bind_into(env);
  return env;
}

}  // namespace attnc
