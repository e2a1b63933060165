#include "runtime/families/flash_sm90/FlashSm90Source.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc::flash_sm90 {

namespace {

// 227 KiB: the most dynamic shared memory one block may opt into on sm_90.
constexpr size_t kMaxSharedBytes = 227 * 1024;

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers =
      cuda::embedded_headers({"flash_attention_sm90.cuh", "generated_mods.cuh"});
  return headers;
}

const std::string& family_template_hash() {
  static const std::string hash = cuda::template_hash(family_headers());
  return hash;
}

bool supported_head_dim(int d) { return d >= 64 && d <= 256 && d % 64 == 0; }

}  // namespace

bool supports_flash_sm90(DType dtype, int head_dim, int head_dim_v) {
  return (dtype == DType::BF16 || dtype == DType::F16) && supported_head_dim(head_dim) &&
         supported_head_dim(head_dim_v);
}

size_t flash_sm90_shared_bytes(const Sm90Tiles& tiles, int head_dim, int head_dim_v) {
  // Mirrors FlashForwardSm90: two Q / O halves of 64 rows, the K and V rings, the barriers, and
  // 1 KiB to align the base to 1024.
  const size_t qo_half = size_t(std::max(head_dim, head_dim_v)) / 64 * 64 * 128;
  const size_t k_stage = size_t(head_dim) / 64 * size_t(tiles.block_n) * 128;
  const size_t v_stage = size_t(head_dim_v) / 64 * size_t(tiles.block_n) * 128;
  const size_t barriers = 8 * size_t(1 + 4 * tiles.stages);
  return 1024 + 2 * qo_half + size_t(tiles.stages) * (k_stage + v_stage) + barriers;
}

Sm90Tiles choose_sm90_tiles(int head_dim, int head_dim_v) {
  if (!supported_head_dim(head_dim) || !supported_head_dim(head_dim_v)) {
    throw RuntimeError(
        fmt::format("the Hopper flash-attention template supports head dims 64, 128, 192 and 256; got {} and {}",
                    head_dim, head_dim_v));
  }
  // Registers decide: a consumer thread holds S (block_n / 2 fp32), P (block_n / 4) and O
  // (head_dim_v / 2) at once under the intra-warpgroup overlap, within 240 registers. Above head dim
  // 128 that leaves 80-key tiles (FlashAttention-3's choice for 256); shared memory then allows two
  // stages. At head dim 64 a K / V stage is small enough for a third.
  const int widest = std::max(head_dim, head_dim_v);
  const Sm90Tiles tiles = widest <= 64 ? Sm90Tiles{128, 3} : widest <= 128 ? Sm90Tiles{128, 2} : Sm90Tiles{80, 2};
  if (flash_sm90_shared_bytes(tiles, head_dim, head_dim_v) > kMaxSharedBytes) {
    throw RuntimeError(fmt::format(
        "the Hopper flash-attention template does not fit head dims {} / {} in shared memory", head_dim, head_dim_v));
  }
  return tiles;
}

std::string to_string(const Sm90Tiles& tiles) { return fmt::format("n{}_s{}", tiles.block_n, tiles.stages); }

FlashSm90Plan plan_flash_sm90_kernel(FlashSm90Spec spec) {
  spec.score.check_kind(dsl::ModKind::Score, "Hopper flash kernel");
  spec.mask.check_kind(dsl::ModKind::Mask, "Hopper flash kernel");
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(
        fmt::format("the Hopper flash kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  FlashSm90Plan plan;
  plan.tiles = choose_sm90_tiles(spec.head_dim, spec.head_dim_v);
  KernelKey& key = plan.key;
  key.family = kFamily;
  key.add("score_mod", spec.score.signature_text());
  key.add("mask_mod", spec.mask.signature_text());
  key.add("dtype", std::string(dtype_name(spec.dtype)));
  key.add("head_dim", std::to_string(spec.head_dim));
  key.add("head_dim_v", std::to_string(spec.head_dim_v));
  key.add("block_m", std::to_string(kBlockM));
  key.add("block_n", std::to_string(plan.tiles.block_n));
  key.add("stages", std::to_string(plan.tiles.stages));
  key.add("check_bounds", spec.check_bounds ? "1" : "0");
  cuda::add_cuda_key_fields(key, flash_sm90_nvrtc_options(spec), family_template_hash());
  plan.spec = std::move(spec);
  return plan;
}

ir::CudaModSource flash_sm90_mods(const FlashSm90Spec& spec, bool annotate_names) {
  ir::CudaCodegenOptions options;
  options.check_bounds = spec.check_bounds;
  options.annotate_names = annotate_names;
  return ir::generate_cuda_mods(spec.score.get(), spec.score.storage, spec.mask.get(), spec.mask.storage, options);
}

cuda::NvrtcOptions flash_sm90_nvrtc_options(const FlashSm90Spec&) {
  cuda::NvrtcOptions options;
  options.arch = kArch;
  return options;
}

cuda::KernelProgram flash_sm90_program(const FlashSm90Plan& plan, const ir::CudaModSource& mods) {
  const FlashSm90Spec& spec = plan.spec;
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  std::string& main = program.source;
  main +=
      fmt::format("// attnc kernel: {} head_dim={} head_dim_v={} {} m{}_{}{}\n", dtype_name(spec.dtype), spec.head_dim,
                  spec.head_dim_v, kArch, kBlockM, to_string(plan.tiles), mods.check_bounds ? " check_bounds" : "");
  main += "#include \"flash_attention_sm90.cuh\"\n";
  main += fmt::format("#include \"{}\"\n", cuda::kGeneratedModsHeader);
  main += "#include \"generated_mods.cuh\"\n\n";
  main +=
      fmt::format("ATTNC_INSTANTIATE_FLASH_SM90_FORWARD({}, attnc_abi::GeneratedMods, attnc_dev::{}, {}, {}, {}, {})\n",
                  kEntry, spec.dtype == DType::F16 ? "f16_t" : "bf16_t", spec.head_dim, spec.head_dim_v,
                  plan.tiles.block_n, plan.tiles.stages);
  return program;
}

}  // namespace attnc::flash_sm90
