#pragma once
// The mod probe: evaluates the generated hooks (attnc_mods.cuh, included before this header) at
// explicit points, one point or tile per thread. It is the smallest complete kernel around a
// generated mod: NVRTC tests compile every mod through it, and on a GPU it checks the device's
// results for the generated code against the interpreter point by point. probe_point and
// probe_tile are ordinary functions too, so host C++ runs the very same code.

#include "mod_abi.cuh"

namespace attnc_probe {

// Point i: the score after the score mod and whether the mask keeps it.
ATTNC_DEVICE void probe_point(int i, const attnc_gen::ModParams& params, const attnc_abi::ModPoint* points,
                              const float* scores, float* out_scores, int* out_keep, attnc_abi::BoundsReport* report) {
  out_scores[i] = attnc_gen::score_mod(scores[i], points[i], params, report);
  out_keep[i] = attnc_gen::mask_mod(points[i], params, report) ? 1 : 0;
}

// Tile i: its class (0 EMPTY, 1 FULL, 2 PARTIAL) at the sizes and (b, h) of points[i].
ATTNC_DEVICE void probe_tile(int i, const attnc_gen::ModParams& params, const attnc_abi::ModPoint* points,
                             const attnc_abi::TileBox* tiles, int* out_classes) {
  out_classes[i] = attnc_gen::tile_class(tiles[i], points[i], params);
}

}  // namespace attnc_probe

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
// Threads [0, num_points) evaluate points; threads [0, num_tiles) classify tiles (points[i] gives
// the tile's b, h and sizes, so num_tiles <= num_points).
extern "C" __global__ void attnc_mod_probe(const attnc_gen::ModParams params, const attnc_abi::ModPoint* points,
                                           const float* scores, int num_points, float* out_scores, int* out_keep,
                                           const attnc_abi::TileBox* tiles, int num_tiles, int* out_classes,
                                           attnc_abi::BoundsReport* report) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < num_points) attnc_probe::probe_point(i, params, points, scores, out_scores, out_keep, report);
  if (i < num_tiles) attnc_probe::probe_tile(i, params, points, tiles, out_classes);
}
#endif
