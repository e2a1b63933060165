#include "runtime/cuda/PackModParams.h"

#include <cstring>
#include <variant>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/core/Tensor.h"

namespace attnc::cuda {

static_assert(sizeof(attnc_abi::TensorParam) == ir::kCudaTensorParamSize);
static_assert(alignof(attnc_abi::TensorParam) == ir::kCudaTensorParamAlign);

std::vector<unsigned char> pack_mod_params(const ir::CudaModSource& mods, std::span<const ir::ParamBinding> score_args,
                                           std::span<const ir::ParamBinding> mask_args) {
  std::vector<unsigned char> bytes(mods.params_size, 0);
  for (size_t i = 0; i < mods.fields.size(); ++i) {
    const ir::CudaParamField& field = mods.fields[i];
    std::span<const ir::ParamBinding> args = field.from_mask ? mask_args : score_args;
    const char* mod = field.from_mask ? "mask" : "score";
    if (field.param >= args.size()) {
      throw RuntimeError(fmt::format("{} mod parameter #{} is not bound", mod, field.param));
    }
    unsigned char* at = bytes.data() + field.offset;
    const ir::ParamBinding& arg = args[field.param];
    if (field.kind == ir::CudaParamField::Kind::Tensor) {
      const auto* tensor = std::get_if<ir::TensorArg>(&arg);
      if (tensor == nullptr) throw RuntimeError(fmt::format("{} mod parameter #{} needs a tensor", mod, field.param));
      if (tensor->shape.size() != field.rank || tensor->strides.size() != field.rank) {
        throw RuntimeError(fmt::format("{} mod parameter #{} needs a tensor of rank {}, got rank {}", mod, field.param,
                                       field.rank, tensor->shape.size()));
      }
      if (tensor->dtype != field.storage) {
        throw RuntimeError(fmt::format("{} mod parameter #{} was compiled for {} storage, got {}", mod, field.param,
                                       dtype_name(field.storage), dtype_name(tensor->dtype)));
      }
      attnc_abi::TensorParam packed{};
      packed.data = tensor->data;
      packed.rank = static_cast<int32_t>(field.rank);
      for (size_t d = 0; d < field.rank; ++d) {
        packed.shape[d] = tensor->shape[d];
        packed.strides[d] = tensor->strides[d];
      }
      std::memcpy(at, &packed, sizeof packed);
      continue;
    }
    const auto* value = std::get_if<ir::Value>(&arg);
    const ir::Type want = field.kind == ir::CudaParamField::Kind::Float  ? ir::Type::Float
                          : field.kind == ir::CudaParamField::Kind::Bool ? ir::Type::Bool
                                                                         : ir::Type::Int;
    if (value == nullptr || value->type != want) {
      throw RuntimeError(fmt::format("{} mod parameter #{} needs a scalar {}", mod, field.param, ir::type_name(want)));
    }
    if (want == ir::Type::Float) {
      std::memcpy(at, &value->f, sizeof(float));
    } else {
      int32_t v = want == ir::Type::Bool ? (value->as_bool() ? 1 : 0) : value->as_int();
      std::memcpy(at, &v, sizeof v);
    }
  }
  return bytes;
}

namespace {

void check_launch_mod(const char* function, const Mod* mod, const ModSpec& compiled, const char* role) {
  if ((mod != nullptr) != bool(compiled)) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} a {}, but the launch passes {}", function,
                                   compiled ? "with" : "without", role, mod ? mod->describe() : "none"));
  }
  if (mod == nullptr) return;
  if (mod->signature() != *compiled.signature()) {
    throw RuntimeError(
        fmt::format("{}: {} differs from the {} the kernel was compiled for (other code or tensor storage types)",
                    function, mod->describe(), role));
  }
  if (!mod->fully_bound()) {
    std::string names;
    for (const std::string& name : mod->unbound_params()) names += (names.empty() ? "'" : ", '") + name + "'";
    throw RuntimeError(fmt::format("{}: {} has unbound parameters: {}", function, mod->describe(), names));
  }
}

std::vector<ir::ParamBinding> device_bindings(const char* function, const Mod* mod) {
  std::vector<ir::ParamBinding> bindings;
  if (mod == nullptr) return bindings;
  for (size_t i = 0; i < mod->def().params.size(); ++i) {
    const Mod::Argument& argument = *mod->argument(i);
    if (const auto* value = std::get_if<ir::Value>(&argument)) {
      bindings.emplace_back(*value);
      continue;
    }
    const Tensor& tensor = std::get<Tensor>(argument);
    if (tensor.device() != Device::Cuda) {
      throw RuntimeError(fmt::format("{}: {}: tensor parameter '{}' must be a CUDA tensor for a CUDA launch, got {}",
                                     function, mod->describe(), mod->def().params[i].name, tensor.describe()));
    }
    bindings.emplace_back(ir::TensorArg{tensor.data(), tensor.dtype(), tensor.shape(), tensor.strides()});
  }
  return bindings;
}

}  // namespace

std::vector<unsigned char> pack_launch_mods(const char* function, const ir::CudaModSource& mods, const Mod* score,
                                            const ModSpec& score_spec, const Mod* mask, const ModSpec& mask_spec) {
  check_launch_mod(function, score, score_spec, "score mod");
  check_launch_mod(function, mask, mask_spec, "mask mod");
  const std::vector<ir::ParamBinding> score_args = device_bindings(function, score);
  const std::vector<ir::ParamBinding> mask_args = device_bindings(function, mask);
  return pack_mod_params(mods, score_args, mask_args);
}

std::vector<ir::ParamBinding> launch_mod_bindings(const char* function, const Mod& mod) {
  return device_bindings(function, &mod);
}

std::string bounds_report_message(const char* function, const ir::CudaModSource& mods,
                                  const attnc_abi::BoundsReport& report, const Mod* score, const Mod* mask) {
  // The report's param indexes the generated fields: the score mod's parameters, then the mask mod's.
  const size_t field = static_cast<size_t>(report.param);
  ATTNC_ASSERT(field < mods.fields.size(), "bounds report names no parameter");
  const ir::CudaParamField& f = mods.fields[field];
  const Mod* mod = f.from_mask ? mask : score;
  ATTNC_ASSERT(mod != nullptr, "bounds report names a parameter of a mod the launch did not pass");
  return out_of_range_message(function, *mod, f.param, report.dim, report.index, report.extent, report.b, report.h,
                              report.q_idx, report.kv_idx);
}

}  // namespace attnc::cuda
