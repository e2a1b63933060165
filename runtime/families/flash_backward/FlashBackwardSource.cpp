#include "runtime/families/flash_backward/FlashBackwardSource.h"

#include <fmt/format.h>

#include "compiler/Differentiate.h"
#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc::flash_backward {

namespace {

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers =
      cuda::embedded_headers({"flash_backward.cuh", "generated_backward_mods.cuh"});
  return headers;
}

const std::string& family_template_hash() {
  static const std::string hash = cuda::template_hash(family_headers());
  return hash;
}

}  // namespace

bool is_supported_backward_head_dim(int head_dim) { return head_dim >= 16 && head_dim <= 128 && head_dim % 16 == 0; }

BackwardTile choose_backward_tile_config(int head_dim, int head_dim_v) {
  if (!is_supported_backward_head_dim(head_dim) || !is_supported_backward_head_dim(head_dim_v)) {
    throw RuntimeError(fmt::format(
        "the CUDA flash backward template supports head dims that are multiples of 16 up to 128; got {} (q, k) and "
        "{} (v)",
        head_dim, head_dim_v));
  }
  return BackwardTile{head_dim <= 64 && head_dim_v <= 64 ? 32 : 16, 64, 4};
}

std::string to_string(const BackwardTile& tile) {
  return fmt::format("m{}_n{}_w{}", tile.block_m, tile.block_n, tile.num_warps);
}

size_t flash_backward_shared_bytes(const BackwardTile& config, int head_dim, int head_dim_v) {
  // Mirrors FlashBackward's layout: K, V and dS^T once, then two query-side stages (Q, dO, and
  // fp32 LSE and delta per row), rows padded by 8 elements.
  const size_t k = size_t(config.block_n) * (head_dim + 8) * 2;
  const size_t v = size_t(config.block_n) * (head_dim_v + 8) * 2;
  const size_t ds = size_t(config.block_n) * (config.block_m + 8) * 2;
  const size_t stage = size_t(config.block_m) * (head_dim + 8) * 2 + size_t(config.block_m) * (head_dim_v + 8) * 2 +
                       size_t(config.block_m) * 8;
  return k + v + ds + 2 * stage;
}

FlashBackwardPlan plan_flash_backward_kernel(FlashBackwardSpec spec) {
  spec.score.check_kind(dsl::ModKind::Score, "flash backward kernel");
  spec.mask.check_kind(dsl::ModKind::Mask, "flash backward kernel");
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(
        fmt::format("the CUDA flash backward kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  FlashBackwardPlan plan;
  plan.tile = choose_backward_tile_config(spec.head_dim, spec.head_dim_v);
  cuda::check_cuda_arch(spec.arch);  // RuntimeError for an unknown architecture
  // 99 KiB: the smallest opt-in shared memory per block of the supported architectures (sm_86/89);
  // the largest tiles take 55552 bytes (head dim 128).
  ATTNC_ASSERT(flash_backward_shared_bytes(plan.tile, spec.head_dim, spec.head_dim_v) <= 99 * 1024,
               "backward tiles exceed shared memory");
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
  cuda::add_cuda_key_fields(key, flash_backward_nvrtc_options(spec), family_template_hash());
  plan.spec = std::move(spec);
  return plan;
}

std::string score_derivative_cuda(const ir::ModDef* score, std::span<const DType> storage, bool check_bounds) {
  std::string out = "namespace attnc_gen {\n\n";
  if (score == nullptr) {
    out +=
        "constexpr bool kHasScoreGrad = false;\n"
        "ATTNC_DEVICE float d_score(float, const attnc_abi::ModPoint&, const attnc_abi::TileBox&, const ModParams&,\n"
        "                           attnc_abi::BoundsReport*) {\n"
        "  return 1.0f;\n"
        "}\n"
        "constexpr int kNumGradSites = 0;\n"
        "constexpr int kNumGradTensors = 0;\n"
        "ATTNC_DEVICE float grad_site(int, float, const attnc_abi::ModPoint&, const ModParams&,\n"
        "                             attnc_abi::BoundsReport*, int32_t& slot, int64_t& offset) {\n"
        "  slot = 0;\n"
        "  offset = 0;\n"
        "  return 0.0f;\n"
        "}\n";
    out += "\n}  // namespace attnc_gen\n";
    return out;
  }
  const ir::DerivativeDefs defs = ir::derivative_defs(*score);
  // The derivatives read parameter #i as field p<i>, which is the score mod's field #i because
  // generate_cuda_mods places the score mod's parameters first.
  ATTNC_ASSERT(defs.d_score.params.size() == score->params.size(), "the derivative has the score mod's parameters");
  const ir::Expr& d = defs.d_score.body;
  const bool is_one = d->kind == ir::Kind::Const && d->float_value == 1.0f;
  out += fmt::format("constexpr bool kHasScoreGrad = {};\n", is_one ? "false" : "true");
  out += ir::generate_cuda_expr_function(d, "d_score", defs.d_score.params, storage, check_bounds);

  // Tensor-parameter gradients: slot k is the k-th float tensor parameter (ModDerivatives'
  // float_tensors order); each site's derivative and its indices (float, exact, already clamped).
  std::vector<uint32_t> float_tensors;
  for (uint32_t p = 0; p < score->params.size(); ++p) {
    if (score->params[p].is_tensor() && score->params[p].elem == ir::Type::Float) float_tensors.push_back(p);
  }
  out += fmt::format("constexpr int kNumGradSites = {};\nconstexpr int kNumGradTensors = {};\n", defs.sites.size(),
                     float_tensors.size());
  std::string dispatch;
  for (size_t j = 0; j < defs.sites.size(); ++j) {
    const ir::DerivativeDefs::Site& site = defs.sites[j];
    out += ir::generate_cuda_expr_function(site.derivative.body, fmt::format("grad_site_{}_derivative", j),
                                           site.derivative.params, storage, check_bounds);
    size_t slot = 0;
    while (float_tensors[slot] != site.param) ++slot;
    dispatch += fmt::format("    case {}: {{\n      slot = {};\n      offset = 0;\n", j, slot);
    for (size_t dim = 0; dim < site.indices.size(); ++dim) {
      out += ir::generate_cuda_expr_function(site.indices[dim].body, fmt::format("grad_site_{}_index_{}", j, dim),
                                             site.indices[dim].params, storage, false);
      dispatch += fmt::format(
          "      offset = offset * params.p{}.shape[{}] + static_cast<int64_t>(grad_site_{}_index_{}(score, p, tile, "
          "params, nullptr));\n",
          site.param, dim, j, dim);
    }
    dispatch += fmt::format("      return grad_site_{}_derivative(score, p, tile, params, report);\n    }}\n", j);
  }
  out +=
      "// Site `site`'s d s' / d(element read), the element's tensor (slot) and its row-major offset.\n"
      "ATTNC_DEVICE float grad_site(int site, float score, const attnc_abi::ModPoint& p, const ModParams& params,\n"
      "                             attnc_abi::BoundsReport* report, int32_t& slot, int64_t& offset) {\n"
      "  const attnc_abi::TileBox tile{p.q_idx, p.q_idx, p.kv_idx, p.kv_idx};\n"
      "  (void)tile;\n"
      "  switch (site) {\n" +
      dispatch +
      "    default: break;\n"
      "  }\n"
      "  slot = 0;\n"
      "  offset = 0;\n"
      "  return 0.0f;\n"
      "}\n";
  out += "\n}  // namespace attnc_gen\n";
  return out;
}

ir::CudaModSource flash_backward_mods(const FlashBackwardSpec& spec, bool annotate_names) {
  ir::CudaCodegenOptions options;
  options.check_bounds = spec.check_bounds;
  options.annotate_names = annotate_names;
  ir::CudaModSource mods =
      ir::generate_cuda_mods(spec.score.get(), spec.score.storage, spec.mask.get(), spec.mask.storage, options);
  mods.text += "\n" + score_derivative_cuda(spec.score.get(), spec.score.storage, spec.check_bounds);
  return mods;
}

cuda::NvrtcOptions flash_backward_nvrtc_options(const FlashBackwardSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  // Left to its own heuristics, ptxas sizes some specialisations for three CTAs per SM (168
  // registers) and spills there; the kernel is meant to run with all 255 (two CTAs of 128 threads).
  options.extra = {"--maxrregcount=255"};
  return options;
}

cuda::KernelProgram flash_backward_program(const FlashBackwardPlan& plan, const ir::CudaModSource& mods) {
  const FlashBackwardSpec& spec = plan.spec;
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  std::string& main = program.source;
  main += fmt::format("// attnc backward kernel: {} head_dim={} head_dim_v={} {} {}{}\n", dtype_name(spec.dtype),
                      spec.head_dim, spec.head_dim_v, spec.arch, to_string(plan.tile),
                      mods.check_bounds ? " check_bounds" : "");
  main += "#include \"flash_backward.cuh\"\n";
  main += fmt::format("#include \"{}\"\n", cuda::kGeneratedModsHeader);
  main += "#include \"generated_backward_mods.cuh\"\n\n";
  main += fmt::format(
      "ATTNC_INSTANTIATE_FLASH_BACKWARD({}, attnc_abi::GeneratedBackwardMods, attnc_dev::{}, {}, {}, {}, {}, {})\n",
      kEntry, spec.dtype == DType::F16 ? "f16_t" : "bf16_t", spec.head_dim, spec.head_dim_v, plan.tile.block_m,
      plan.tile.block_n, plan.tile.num_warps);
  return program;
}

}  // namespace attnc::flash_backward
