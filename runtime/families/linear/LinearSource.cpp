#include "runtime/families/linear/LinearSource.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/families/linear/linear_attention.cuh"

namespace attnc::linear {

namespace {

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers = cuda::embedded_headers({"linear_attention.cuh"});
  return headers;
}

size_t shared_bytes(const LinearSpec& spec, const LinearTile& tile) {
  return static_cast<size_t>(attnc_linear::linear_shared_floats(spec.head_dim, tile.dv_tile, tile.chunk, spec.causal)) *
         sizeof(float);
}

const char* element_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float";
    case DType::F16: return "attnc_dev::f16_t";
    default: return "attnc_dev::bf16_t";
  }
}

}  // namespace

LinearPlan plan_linear_kernel(LinearSpec spec) {
  if (spec.dtype != DType::F32 && spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(fmt::format("the CUDA linear attention kernel takes fp32, bf16 or fp16 inputs, not {}",
                                   dtype_name(spec.dtype)));
  }
  for (int dim : {spec.head_dim, spec.head_dim_v}) {
    if (dim < 1 || dim > kMaxHeadDim) {
      throw RuntimeError(
          fmt::format("the CUDA linear attention kernel takes head dims 1 to {}, not {} (q/k) and {} (v)", kMaxHeadDim,
                      spec.head_dim, spec.head_dim_v));
    }
  }
  if (spec.chunk_size < 1) {
    throw RuntimeError(fmt::format("linear attention: chunk_size must be at least 1, not {}", spec.chunk_size));
  }
  cuda::check_cuda_arch(spec.arch);

  LinearPlan plan;
  LinearTile& tile = plan.tile;
  tile.chunk = spec.chunk_size >= 64 ? 64 : spec.chunk_size >= 32 ? 32 : 16;
  tile.dv_tile = std::min(64, spec.head_dim_v);
  while (shared_bytes(spec, tile) > kMaxSharedBytes) {
    if (tile.chunk > 16) {
      tile.chunk /= 2;
    } else {
      tile.dv_tile = (tile.dv_tile + 1) / 2;  // at head dims <= 256 this fits long before 1
    }
  }
  plan.shared_bytes = shared_bytes(spec, tile);

  KernelKey& key = plan.key;
  key.family = kFamily;
  key.add("dtype", std::string(dtype_name(spec.dtype)));
  key.add("head_dim", std::to_string(spec.head_dim));
  key.add("head_dim_v", std::to_string(spec.head_dim_v));
  key.add("causal", spec.causal ? "1" : "0");
  key.add("dv_tile", std::to_string(tile.dv_tile));
  key.add("chunk", std::to_string(tile.chunk));
  key.add("threads", std::to_string(tile.threads));
  cuda::add_cuda_key_fields(key, linear_nvrtc_options(spec), cuda::template_hash(family_headers()));
  plan.spec = std::move(spec);
  return plan;
}

cuda::NvrtcOptions linear_nvrtc_options(const LinearSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  return options;
}

cuda::KernelProgram linear_program(const LinearPlan& plan) {
  const LinearSpec& spec = plan.spec;
  const LinearTile& tile = plan.tile;
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.source = fmt::format(
      "// attnc linear attention: {} head_dim={} head_dim_v={} {} {} dv_tile={} chunk={} threads={}\n"
      "#include \"linear_attention.cuh\"\n\n"
      "ATTNC_INSTANTIATE_LINEAR_FORWARD({}, {}, {}, {}, {}, {}, {}, {})\n",
      dtype_name(spec.dtype), spec.head_dim, spec.head_dim_v, spec.causal ? "causal" : "non-causal", spec.arch,
      tile.dv_tile, tile.chunk, tile.threads, kEntry, element_type(spec.dtype), spec.head_dim, spec.head_dim_v,
      tile.dv_tile, tile.chunk, tile.threads, spec.causal ? "true" : "false");
  return program;
}

}  // namespace attnc::linear
