#include "runtime/families/flash/FlashSource.h"

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc::flash {

namespace {

// The family's templates: the kernel, the traits over the generated code, and what they include.
const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers =
      cuda::embedded_headers({"flash_attention.cuh", "generated_mods.cuh"});
  return headers;
}

const std::string& family_template_hash() {
  static const std::string hash = cuda::template_hash(family_headers());
  return hash;
}

}  // namespace

FlashPlan plan_flash_kernel(FlashSpec spec) {
  spec.score.check_kind(dsl::ModKind::Score, "flash kernel");
  spec.mask.check_kind(dsl::ModKind::Mask, "flash kernel");
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(fmt::format("the CUDA flash kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  FlashPlan plan;
  plan.tile = choose_tile_config(spec.head_dim, spec.head_dim_v, cuda::sm_number(spec.arch));
  KernelKey& key = plan.key;
  key.family = kFamily;
  key.add("score_mod", spec.score.signature_text());
  key.add("mask_mod", spec.mask.signature_text());
  key.add("dtype", std::string(dtype_name(spec.dtype)));
  key.add("head_dim", std::to_string(spec.head_dim));
  key.add("head_dim_v", std::to_string(spec.head_dim_v));
  key.add("block_m", std::to_string(plan.tile.block_m));
  key.add("block_n", std::to_string(plan.tile.block_n));
  key.add("num_warps", std::to_string(plan.tile.num_warps));
  key.add("check_bounds", spec.check_bounds ? "1" : "0");
  if (spec.dropout) key.add("dropout", "1");
  cuda::add_cuda_key_fields(key, flash_nvrtc_options(spec), family_template_hash());
  plan.spec = std::move(spec);
  return plan;
}

ir::CudaModSource flash_mods(const FlashSpec& spec, bool annotate_names) {
  ir::CudaCodegenOptions options;
  options.check_bounds = spec.check_bounds;
  options.annotate_names = annotate_names;
  return ir::generate_cuda_mods(spec.score.get(), spec.score.storage, spec.mask.get(), spec.mask.storage, options);
}

cuda::NvrtcOptions flash_nvrtc_options(const FlashSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  return options;
}

cuda::KernelProgram flash_program(const FlashPlan& plan, const ir::CudaModSource& mods) {
  const FlashSpec& spec = plan.spec;
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  // The order flash_attention.cuh's header comment asks for: the template, the generated code, the
  // traits adapting it, then the instantiation.
  std::string& main = program.source;
  main += fmt::format("// attnc kernel: {} head_dim={} head_dim_v={} {} {}{}{}\n", dtype_name(spec.dtype),
                      spec.head_dim, spec.head_dim_v, spec.arch, to_string(plan.tile),
                      mods.check_bounds ? " check_bounds" : "", spec.dropout ? " dropout" : "");
  main += "#include \"flash_attention.cuh\"\n";
  main += fmt::format("#include \"{}\"\n", cuda::kGeneratedModsHeader);
  main += "#include \"generated_mods.cuh\"\n\n";
  main += fmt::format(
      "ATTNC_INSTANTIATE_FLASH_FORWARD{}({}, attnc_abi::GeneratedMods, attnc_dev::{}, {}, {}, {}, {}, {})\n",
      spec.dropout ? "_DROPOUT" : "", kEntry, spec.dtype == DType::F16 ? "f16_t" : "bf16_t", spec.head_dim, spec.head_dim_v, plan.tile.block_m,
      plan.tile.block_n, plan.tile.num_warps);
  return program;
}

}  // namespace attnc::flash
