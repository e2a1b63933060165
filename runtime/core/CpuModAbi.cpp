#include "runtime/core/CpuModAbi.h"

#include <limits>
#include <string>
#include <variant>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

constexpr int32_t kMaxRank = static_cast<int32_t>(sizeof(CpuParam::shape) / sizeof(CpuParam::shape[0]));

}  // namespace

CpuModArgs CpuModArgs::pack(const Mod& mod, bool check_bounds) {
  const ir::ModDef& def = mod.def();
  std::vector<std::string> unbound = mod.unbound_params();
  if (!unbound.empty()) {
    throw RuntimeError(fmt::format("{}: parameter{} {} not bound", mod.describe(), unbound.size() > 1 ? "s" : "",
                                   fmt::join(unbound, ", ")));
  }
  CpuModArgs args;
  args.check_bounds = check_bounds;
  args.params.resize(def.params.size());
  for (size_t i = 0; i < def.params.size(); ++i) {
    const ir::ParamDecl& decl = def.params[i];
    CpuParam& p = args.params[i];
    const Mod::Argument& argument = *mod.argument(i);
    if (const auto* value = std::get_if<ir::Value>(&argument)) {
      switch (decl.elem) {
        case ir::Type::Int: p.int_value = value->as_int(); break;
        case ir::Type::Float: p.float_value = value->f; break;
        default: p.bool_value = value->as_bool() ? 1 : 0; break;
      }
      continue;
    }
    const Tensor& tensor = std::get<Tensor>(argument);
    auto where = [&] { return fmt::format("{}: parameter '{}' ({})", mod.describe(), decl.name, tensor.describe()); };
    if (tensor.device() != Device::Cpu) throw RuntimeError(where() + ": the CPU path needs a CPU tensor");
    if (static_cast<int64_t>(tensor.rank()) > kMaxRank) {
      throw RuntimeError(fmt::format("{}: the CPU path takes tensors of rank at most {}", where(), kMaxRank));
    }
    // Compiled code clamps indices into the tensor without checking that it has an element.
    if (tensor.numel() == 0) throw RuntimeError(where() + ": the tensor is empty, so there is nothing to read");
    p.data = tensor.data();
    p.rank = static_cast<int32_t>(tensor.rank());
    for (size_t d = 0; d < tensor.rank(); ++d) {
      if (tensor.shape()[d] > std::numeric_limits<int32_t>::max()) {
        throw RuntimeError(
            fmt::format("{}: extent {} of dimension {} is outside the int range", where(), tensor.shape()[d], d));
      }
      p.shape[d] = tensor.shape()[d];
      p.strides[d] = tensor.strides()[d];
    }
  }
  return args;
}

}  // namespace attnc
