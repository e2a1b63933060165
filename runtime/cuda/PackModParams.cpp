#include "runtime/cuda/PackModParams.h"

#include <cstring>
#include <variant>

#include <fmt/format.h>

#include "runtime/RuntimeError.h"
#include "runtime/kernels/mod_abi.cuh"

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

}  // namespace attnc::cuda
