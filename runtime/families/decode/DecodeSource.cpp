#include "runtime/families/decode/DecodeSource.h"

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc::decode {

namespace {

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers =
      cuda::embedded_headers({"decode_attention.cuh", "generated_mods.cuh"});
  return headers;
}

const std::string& family_template_hash() {
  static const std::string hash = cuda::template_hash(family_headers());
  return hash;
}

}  // namespace

DecodePlan plan_decode_kernel(DecodeSpec spec) {
  spec.score.check_kind(dsl::ModKind::Score, "decode kernel");
  spec.mask.check_kind(dsl::ModKind::Mask, "decode kernel");
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(
        fmt::format("the CUDA decode kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  cuda::check_cuda_arch(spec.arch);
  DecodePlan plan;
  plan.tile = choose_decode_tile(spec.rows, spec.head_dim, spec.head_dim_v, cuda::sm_number(spec.arch), spec.stages);
  KernelKey& key = plan.key;
  key.family = kFamily;
  key.add("score_mod", spec.score.signature_text());
  key.add("mask_mod", spec.mask.signature_text());
  key.add("dtype", std::string(dtype_name(spec.dtype)));
  key.add("head_dim", std::to_string(spec.head_dim));
  key.add("head_dim_v", std::to_string(spec.head_dim_v));
  key.add("warps_m", std::to_string(plan.tile.warps_m));
  key.add("warps_n", std::to_string(plan.tile.warps_n));
  key.add("stages", std::to_string(plan.tile.stages));
  key.add("check_bounds", spec.check_bounds ? "1" : "0");
  cuda::add_cuda_key_fields(key, decode_nvrtc_options(spec), family_template_hash());
  plan.spec = std::move(spec);
  return plan;
}

ir::CudaModSource decode_mods(const DecodeSpec& spec, bool annotate_names) {
  ir::CudaCodegenOptions options;
  options.check_bounds = spec.check_bounds;
  options.annotate_names = annotate_names;
  return ir::generate_cuda_mods(spec.score.get(), spec.score.storage, spec.mask.get(), spec.mask.storage, options);
}

cuda::NvrtcOptions decode_nvrtc_options(const DecodeSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  return options;
}

cuda::KernelProgram decode_program(const DecodePlan& plan, const ir::CudaModSource& mods) {
  const DecodeSpec& spec = plan.spec;
  cuda::KernelProgram program;
  program.name = "attnc_decode.cu";
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  std::string& main = program.source;
  main += fmt::format("// attnc decode kernel: {} head_dim={} head_dim_v={} {} {}{}\n", dtype_name(spec.dtype),
                      spec.head_dim, spec.head_dim_v, spec.arch, to_string(plan.tile),
                      mods.check_bounds ? " check_bounds" : "");
  main += "#include \"decode_attention.cuh\"\n";
  main += fmt::format("#include \"{}\"\n", cuda::kGeneratedModsHeader);
  main += "#include \"generated_mods.cuh\"\n\n";
  main += fmt::format("ATTNC_INSTANTIATE_DECODE({}, {}, attnc_abi::GeneratedMods, attnc_dev::{}, {}, {}, {}, {}, {})\n",
                      kSplitEntry, kMergeEntry, spec.dtype == DType::F16 ? "f16_t" : "bf16_t", spec.head_dim,
                      spec.head_dim_v, plan.tile.warps_m, plan.tile.warps_n, plan.tile.stages);
  return program;
}

}  // namespace attnc::decode
