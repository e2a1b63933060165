#pragma once
// A tile map report (runtime/tilemap/TileMapReport.h) as an SVG picture, for `attnc explain --svg`:
// per (b, h) slice a grid with one <rect> per tile, coloured by class (EMPTY light grey, FULL blue,
// PARTIAL orange; each rect's class attribute says "tile empty" / "tile full" / "tile partial"),
// query tiles down and key tiles across; a legend with each class's count, and the fractions of work
// kept. The legend's swatches are paths, so the rects are exactly the tiles. Nothing here writes
// files.

#include <cstdint>
#include <string>

#include "runtime/tilemap/TileMapReport.h"

namespace attnc {

// Pictures with more tiles than this are refused (a browser would not open them).
inline constexpr int64_t kMaxSvgTiles = 1 << 20;

// The picture as a standalone SVG document; `title` heads it (e.g. "mask sliding_window(window=4)
// of mods.attn"). RuntimeError for more than kMaxSvgTiles tiles over all slices.
std::string tile_map_svg(const TileMapReport& report, const std::string& title);

}  // namespace attnc
