#pragma once
// What a mask costs a tiled kernel, before anything runs (`attnc explain`): the tile map the
// kernels would walk (runtime/tilemap/TileMapCpu.h: the compiled tile classifier over block
// summaries), counted and laid out per (b, h) slice, with the fraction of work the kernels keep
// and, for sizes small enough to evaluate every element with the interpreter, the exact fraction
// of (q_idx, kv_idx) pairs the mask keeps and the element-level mask itself.
//
// Work kept is measured in elements of the kept tiles (FULL + PARTIAL; tail tiles count their real
// size), because that is what a kernel computes; a PARTIAL tile is computed whole and masked per
// element. The exact element fraction shows how much of that is masked away inside PARTIAL tiles.
//
// Text renderings (tile grid, element grid) are here too so the tests read what the CLI prints;
// the SVG picture is runtime/tilemap/TileMapSvg.h. Nothing here prints.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/Mod.h"
#include "runtime/tilemap/TileMap.h"

namespace attnc {

enum class TileClass : uint8_t { Empty = 0, Full = 1, Partial = 2 };

struct TileMapReportLimits {
  // Evaluate every element of every slice with the interpreter when q_len x kv_len x slices is at
  // most this (a few seconds of interpretation at worst).
  int64_t max_exact_elements = int64_t(1) << 22;
  // Keep the element-level mask when q_len and kv_len are both at most this.
  int32_t max_element_grid = 64;
};

// One (b, h) of the map. b or h is -1 when the mask's classes cannot depend on it (the map is the
// same for every value; the element counts are then for b = 0 or h = 0).
struct TileMapSlice {
  int32_t b = -1, h = -1;
  std::vector<TileClass> classes;  // q_tiles x kv_tiles, row-major
  int64_t empty = 0, full = 0, partial = 0;
  int64_t kept_tile_elements = 0;        // elements of the FULL and PARTIAL tiles
  std::optional<int64_t> kept_elements;  // exact count of kept (q_idx, kv_idx), when evaluated
  std::vector<uint8_t> element_mask;     // q_len x kv_len 0/1, when small enough; else empty
};

struct TileMapReport {
  TileMapShape shape;
  std::vector<TileMapSlice> slices;
  int64_t elements_per_slice() const { return int64_t(shape.q_len) * shape.kv_len; }
  int64_t tiles_per_slice() const { return int64_t(shape.q_tiles()) * shape.kv_tiles(); }
  // Over every slice: (FULL + PARTIAL) / all tiles; elements of kept tiles / all elements; and the
  // exact kept elements / all elements when every slice was evaluated.
  double kept_tile_fraction() const;
  double kept_work_fraction() const;
  std::optional<double> kept_element_fraction() const;
};

// The report of a fully bound mask mod (tensors on the CPU) for `shape` (batch and heads say how
// many slices there can be; q_offset shifts q_idx as in a call). RuntimeError as build_tile_map_cpu.
TileMapReport explain_tile_map(const Mod& mask, const TileMapShape& shape, const TileMapReportLimits& limits = {});

// "." EMPTY, "#" FULL, "+" PARTIAL: one line per query tile, one character per key tile.
char tile_class_char(TileClass c);
std::string tile_grid_text(const TileMapReport& report, const TileMapSlice& slice);
// "#" kept, "." masked: one line per query row (requires slice.element_mask).
std::string element_grid_text(const TileMapReport& report, const TileMapSlice& slice);

}  // namespace attnc
