#pragma once
// The tile-map pre-pass's compile side: the classifier of compiler/TileMapClassifier.h for a mask
// and tile sizes, its generated code, the cache key and the translation unit over tile_map.cuh
// (runtime/tilemap/). Like every CUDA family's, it compiles on machines without a GPU.
//
// The key's fields, in order: mask_mod (its signature), block_m, block_n, then the CUDA fields
// (runtime/cuda/CompileThroughCache.h), whose template field hashes tile_map.cuh and what it
// includes.

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "compiler/DType.h"
#include "compiler/TileMapClassifier.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::tilemap {

inline constexpr const char* kFamily = "tile_map";
inline constexpr const char* kBuildEntry = "attnc_tile_map_build";
inline constexpr int kThreads = 128;  // per CTA, of both kinds of kernel

// "attnc_tile_map_summary<k>": the kernel summarising the classifier's summary k.
std::string summary_entry(size_t summary);

struct TileMapSpec {
  ModSpec mask;           // a mask mod
  int32_t block_m = 128;  // the tiles of the kernel that walks the map
  int32_t block_n = 128;
  std::string arch = "sm_90a";
};

struct TileMapPlan {
  TileMapSpec spec;
  ir::TileMapClassifier classifier;
  std::vector<DType> storage;  // of classifier.params: the mask's, then int32 / fp32 summaries
  KernelKey key;
};

// RuntimeError for an empty or non-mask spec, tiles that are not positive or an unknown arch.
TileMapPlan plan_tile_map_kernel(TileMapSpec spec);

// The generated code: attnc_gen::ModParams with one field per classifier parameter (the mask's,
// then each summary's minima and maxima) and
//   ATTNC_DEVICE int32_t attnc_gen::tile_map_class(float, const ModPoint&, const TileBox&,
//                                                  const ModParams&, BoundsReport*)
// (0 EMPTY, 1 FULL, 2 PARTIAL).
ir::CudaModSource tile_map_mods(const TileMapPlan& plan);

cuda::NvrtcOptions tile_map_nvrtc_options(const TileMapSpec& spec);

// tile_map.cuh, the generated code, and the build kernel and one summary kernel per summary.
cuda::KernelProgram tile_map_program(const TileMapPlan& plan, const ir::CudaModSource& mods);

}  // namespace attnc::tilemap
