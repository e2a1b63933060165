#pragma once
// The tile-map pre-pass on the GPU, staged as every CUDA family:
//
//   TileMapSpec --plan_tile_map_kernel--> TileMapPlan --load_tile_map_kernel(plan, cache)--> TileMapKernel
//   TileMapKernel::build(mask, shape, stream) --> TileMap on the device
//
// build() launches one summary kernel per summarised tensor, then the build kernel
// (runtime/tilemap/tile_map.cuh), on `stream`, without waiting; the returned map owns every buffer
// the launches use, so it must outlive them (a stream synchronisation, or the attention launch
// that reads it on the same stream).

#include <memory>
#include <mutex>
#include <string>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/core/Mod.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/tilemap/TileMap.h"
#include "runtime/tilemap/TileMapSource.h"

namespace attnc::tilemap {

class TileMapKernel {
 public:
  TileMapKernel(TileMapPlan plan, std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods, int device);
  ~TileMapKernel();

  const TileMapPlan& plan() const { return plan_; }

  // The map of `mask` (a fully bound mod with the plan's signature, tensors on the device) for
  // `shape` (whose tiles must be the plan's). RuntimeError naming what does not fit.
  TileMap build(const Mod& mask, const TileMapShape& shape, cuda::CuStream stream = nullptr) const;

  // The bytes of the build kernel's BuildParams<attnc_gen::ModParams> (tile_map.cuh) for these
  // buffers and the mask's device arguments plus `summaries` (two per summary, minima first).
  std::vector<unsigned char> pack_build_arguments(const Mod& mask, const TileMapShape& shape,
                                                  const std::vector<Tensor>& summaries, void* counts, void* entries,
                                                  int32_t batch_stride, int32_t head_stride) const;

 private:
  cuda::CuFunction function(const std::string& name) const;

  TileMapPlan plan_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;
  int device_ = 0;
  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
};

// The pre-pass for `plan`, from `cache` or compiled with NVRTC into it.
std::shared_ptr<const TileMapKernel> load_tile_map_kernel(const TileMapPlan& plan, KernelCache& cache, int device = 0);

// build() through the process-wide kernel cache (cuda::default_kernel_cache()), with kernels kept
// loaded per key for the life of the process.
TileMap build_tile_map_cuda(const Mod& mask, const TileMapShape& shape, const std::string& arch,
                            cuda::CuStream stream = nullptr);

}  // namespace attnc::tilemap
