#include "runtime/cache/CudaKernelKey.h"

#include <cstdlib>

#include <fmt/format.h>

#include "compiler/CudaCodegen.h"
#include "compiler/Signature.h"
#include "runtime/cuda/EmbeddedKernels.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/TileConfig.h"

namespace attnc {

namespace {

cuda::NvrtcOptions nvrtc_options(const CudaKernelRequest& request) {
  cuda::NvrtcOptions options;
  options.arch = request.spec.arch;
  return options;
}

}  // namespace

const std::string& kernel_template_hash() {
  static const std::string hash = [] {
    std::vector<std::pair<std::string_view, std::string_view>> sources;
    for (const EmbeddedKernelSource& source : embedded_kernel_sources()) sources.emplace_back(source.name, source.text);
    return hash_template_sources(sources);
  }();
  return hash;
}

KernelKey make_cuda_kernel_key(const CudaKernelRequest& request, std::string_view nvrtc_version) {
  cuda::check_cuda_arch(request.spec.arch);
  KernelKey key;
  if (request.score) key.score_mod = ir::compute_signature(*request.score, request.score_storage);
  if (request.mask) key.mask_mod = ir::compute_signature(*request.mask, request.mask_storage);
  key.dtype = request.spec.dtype;
  key.head_dim = request.spec.head_dim;
  key.head_dim_v = request.spec.head_dim_v == 0 ? request.spec.head_dim : request.spec.head_dim_v;
  // "sm_90a" -> 90; check_cuda_arch accepted the name.
  int sm = std::atoi(request.spec.arch.c_str() + 3);
  TileConfig tile = choose_tile_config(key.head_dim, key.head_dim_v, sm);
  key.tile = KernelKey::Tile{tile.block_m, tile.block_n, tile.num_warps};
  key.arch = request.spec.arch;
  key.nvrtc_version = nvrtc_version;
  key.template_hash = kernel_template_hash();
  key.check_bounds = request.check_bounds;
  key.emit = "cubin";
  key.compile_options = cuda::Nvrtc::command_options(nvrtc_options(request));
  return key;
}

CachedKernel compile_cuda_kernel(const CudaKernelRequest& request) {
  ir::CudaCodegenOptions codegen;
  codegen.check_bounds = request.check_bounds;
  ir::CudaModSource mods =
      ir::generate_cuda_mods(request.score, request.score_storage, request.mask, request.mask_storage, codegen);
  cuda::KernelTranslationUnit unit = cuda::make_kernel_translation_unit(mods, request.spec);
  cuda::CompiledKernel compiled = cuda::Nvrtc::get().compile(unit.program, nvrtc_options(request));
  CachedKernel kernel;
  kernel.payload.assign(compiled.cubin.begin(), compiled.cubin.end());
  kernel.metadata = fmt::format("entry={}\nflash_attention={}\n", unit.entry, unit.flash_attention ? 1 : 0);
  return kernel;
}

}  // namespace attnc
