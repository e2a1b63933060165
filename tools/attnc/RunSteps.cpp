#include "tools/attnc/RunSteps.h"

#include <charconv>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"

namespace attnc::cli {

namespace {

// Binds NAME=VALUE in `mod` if the mod declares NAME; returns whether it did.
bool bind_argument(Mod& mod, const std::string& name, const std::string& value) {
  std::optional<uint32_t> index = mod.def().find_param(name);
  if (!index) return false;
  const ir::ParamDecl& param = mod.def().params[*index];
  if (param.is_tensor()) {
    if (!value.ends_with(".npy")) {
      throw UsageError(fmt::format("parameter '{}' is a tensor; pass it as --arg {}=FILE.npy", name, name));
    }
    mod.bind(name, read_npy(value));
    return true;
  }
  std::string what = "--arg " + name;
  switch (param.elem) {
    case ir::Type::Int: {
      int64_t parsed = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (end != value.data() + value.size() || (error != std::errc() && error != std::errc::result_out_of_range)) {
        throw UsageError(fmt::format("{}: '{}' is not an integer (the parameter is an int)", what, value));
      }
      if (error == std::errc::result_out_of_range) {
        throw UsageError(fmt::format("{}: '{}' does not fit a 32-bit int", what, value));
      }
      mod.bind(name, parsed);
      break;
    }
    case ir::Type::Float: mod.bind(name, parse_run_float(value, what)); break;
    case ir::Type::Bool:
      if (value != "true" && value != "false") throw UsageError(what + ": a bool is 'true' or 'false'");
      mod.bind(name, value == "true");
      break;
    default: break;
  }
  return true;
}

void require_bound(const std::optional<Mod>& mod) {
  if (!mod) return;
  std::vector<std::string> unbound = mod->unbound_params();
  if (unbound.empty()) return;
  std::string how;
  for (const std::string& name : unbound) how += fmt::format(" --arg {}=...", name);
  throw RuntimeError(fmt::format("{}: parameter{} {} not bound; pass{}", mod->describe(), unbound.size() > 1 ? "s" : "",
                                 fmt::join(unbound, ", "), how));
}

}  // namespace

RunMods load_run_mods(const RunOptions& o) {
  RunMods mods;
  if (o.file.empty()) return mods;  // --kernel linear
  ir::Module module = ir::load_module_file(o.file);
  if (!o.score_mod.empty()) mods.score = Mod::from_module(module, o.score_mod);
  if (!o.mask_mod.empty()) mods.mask = Mod::from_module(module, o.mask_mod);
  for (const auto& [name, value] : o.args) {
    bool bound = false;
    if (mods.score) bound = bind_argument(*mods.score, name, value) || bound;
    if (mods.mask) bound = bind_argument(*mods.mask, name, value) || bound;
    if (!bound) throw UsageError(fmt::format("no selected mod has a parameter named '{}'", name));
  }
  require_bound(mods.score);
  require_bound(mods.mask);
  return mods;
}

Tensor read_run_mask(const RunOptions& o) {
  if (o.mask.empty()) return {};
  Tensor mask = read_npy(o.mask);
  if (mask.dtype() != DType::Bool && mask.dtype() != DType::U8) {
    throw RuntimeError(
        fmt::format("--mask {}: a mask holds bool ('|b1') or uint8 ('|u1') values, got {}", o.mask, mask.describe()));
  }
  if (mask.rank() < 1 || mask.rank() > 4) {
    throw RuntimeError(fmt::format("--mask {}: a mask has rank 1 to 4, broadcastable to (B, H, S, S_kv), got {}",
                                   o.mask, mask.describe()));
  }
  return mask;
}

void check_run_mask(const RunOptions& o, const Tensor& mask, const Tensor& q, const Tensor& k) {
  if (!mask.defined() || q.rank() != 4 || k.rank() != 4) return;
  const std::vector<int64_t> target{q.size(0), q.size(1), q.size(2), k.size(2)};
  const size_t skip = 4 - mask.rank();
  for (size_t d = 0; d < mask.rank(); ++d) {
    if (mask.size(d) != 1 && mask.size(d) != target[skip + d]) {
      throw RuntimeError(fmt::format("--mask {}: {} does not broadcast to {} (B, H, S, S_kv)", o.mask, mask.describe(),
                                     shape_to_string(target)));
    }
  }
  // Linear attention drops keys: it reads the mask's first query row only.
  if (o.kernel == RunKernel::Linear && mask.rank() >= 2 && mask.size(mask.rank() - 2) != 1) {
    throw RuntimeError(
        fmt::format("--mask {}: with --kernel linear a mask drops keys for every query, so its S axis "
                    "(the second to last) must have extent 1, got {}",
                    o.mask, mask.describe()));
  }
}

AttentionOptions run_attention_options(const RunOptions& o, const RunMods& mods) {
  AttentionOptions options;
  options.score_mod = mods.score ? &*mods.score : nullptr;
  options.mask_mod = mods.mask ? &*mods.mask : nullptr;
  options.scale = o.scale;
  options.q_offset = o.q_offset;
  options.check_bounds = o.check_bounds;
  return options;
}

std::string in_user_terms(const std::string& message) {
  for (const char* function :
       {"flash_attention (cuda): ", "flash_attention: ", "standard_attention: ", "decode_attention: ",
        "memory_efficient_attention: ", "linear_attention: ", "ring_attention: ", "paged_attention: "}) {
    if (message.starts_with(function)) return message.substr(std::strlen(function));
  }
  return message;
}

void write_run_outputs(const RunOptions& o, const Tensor& out, const std::optional<Tensor>& lse) {
  // Both outputs are written before either replaces anything: the set appears whole or not at all.
  std::vector<AtomicFile> outputs;
  outputs.emplace_back(o.out);
  outputs.back().write(serialize_npy(out));
  if (lse) {
    outputs.emplace_back(o.lse);
    outputs.back().write(serialize_npy(*lse));
  }
  for (AtomicFile& file : outputs) file.commit();
}

}  // namespace attnc::cli
