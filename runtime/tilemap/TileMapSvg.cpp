#include "runtime/tilemap/TileMapSvg.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

struct ClassStyle {
  TileClass tile_class;
  const char* name;   // the rect's class
  const char* label;  // in the legend
  const char* fill;
};

constexpr ClassStyle kStyles[] = {
    {TileClass::Empty, "empty", "EMPTY", "#e8e8e8"},
    {TileClass::Full, "full", "FULL", "#2b6cb0"},
    {TileClass::Partial, "partial", "PARTIAL", "#ed8936"},
};

const ClassStyle& style_of(TileClass c) { return kStyles[static_cast<int>(c)]; }

std::string escape_xml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') out += c;
    }
  }
  return out;
}

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

std::string slice_name(const TileMapSlice& slice) {
  if (slice.b < 0 && slice.h < 0) return "every b and h";
  std::string out;
  out += slice.b < 0 ? "every b" : fmt::format("b={}", slice.b);
  out += slice.h < 0 ? ", every h" : fmt::format(", h={}", slice.h);
  return out;
}

}  // namespace

std::string tile_map_svg(const TileMapReport& report, const std::string& title) {
  const TileMapShape& shape = report.shape;
  const int32_t q_tiles = shape.q_tiles(), kv_tiles = shape.kv_tiles();
  const int64_t tiles = report.tiles_per_slice() * int64_t(report.slices.size());
  if (tiles > kMaxSvgTiles) {
    throw RuntimeError(
        fmt::format("a picture of {} tiles is too large to draw (at most {}); use larger tiles", tiles, kMaxSvgTiles));
  }
  // Cells of 2 to 24 pixels, the grid at most about 800 pixels on its longer side.
  const int cell = std::clamp(800 / std::max({q_tiles, kv_tiles, 1}), 2, 24);
  const int margin = 16, line = 18;
  const int header_lines = 5;
  const int grid_width = kv_tiles * cell, grid_height = q_tiles * cell;
  const int panel_height = line + grid_height + margin;
  const int width = std::max(2 * margin + grid_width, 560);
  const int top = margin + header_lines * line + margin;
  const int height = top + panel_height * int(report.slices.size()) + margin;

  int64_t empty = 0, full = 0, partial = 0;
  for (const TileMapSlice& s : report.slices) {
    empty += s.empty;
    full += s.full;
    partial += s.partial;
  }

  std::string svg;
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"13\">\n",
      width, height);
  svg += fmt::format("<title>{}</title>\n", escape_xml(title));
  int y = margin + 13;
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n", margin, y, escape_xml(title));
  y += line;
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\">q_len={} kv_len={} q_offset={}, tiles of {} queries x {} keys: {} x {} tiles</text>\n",
      margin, y, shape.q_len, shape.kv_len, shape.q_offset, shape.block_m, shape.block_n, q_tiles, kv_tiles);
  y += line;
  // The legend: a swatch and the count of each class.
  int x = margin;
  for (const ClassStyle& style : kStyles) {
    const int64_t count = style.tile_class == TileClass::Empty  ? empty
                          : style.tile_class == TileClass::Full ? full
                                                                : partial;
    svg += fmt::format("<path d=\"M{} {}h12v12h-12z\" fill=\"{}\" stroke=\"#555\"/>\n", x, y - 11, style.fill);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{} {}</text>\n", x + 17, y, style.label, count);
    x += 150;
  }
  y += line;
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\">work kept: {} of the tiles, {} of the elements (in FULL and PARTIAL tiles)</text>\n",
      margin, y, percent(report.kept_tile_fraction()), percent(report.kept_work_fraction()));
  y += line;
  const std::optional<double> exact = report.kept_element_fraction();
  svg += fmt::format("<text x=\"{}\" y=\"{}\">elements the mask keeps: {}</text>\n", margin, y,
                     exact ? percent(*exact) : std::string("not evaluated (too many)"));

  const char* stroke = cell >= 6 ? " stroke=\"#ffffff\" stroke-width=\"1\"" : "";
  int panel_top = top;
  for (const TileMapSlice& slice : report.slices) {
    svg += fmt::format("<g>\n<text x=\"{}\" y=\"{}\">{}</text>\n", margin, panel_top + 13, slice_name(slice));
    const int grid_top = panel_top + line;
    for (int32_t qt = 0; qt < q_tiles; ++qt) {
      for (int32_t kt = 0; kt < kv_tiles; ++kt) {
        const ClassStyle& style = style_of(slice.classes[size_t(qt) * kv_tiles + kt]);
        // Tail tiles are drawn at their real share of a tile.
        const double w = cell * double(std::min(shape.kv_len - kt * shape.block_n, shape.block_n)) / shape.block_n;
        const double h = cell * double(std::min(shape.q_len - qt * shape.block_m, shape.block_m)) / shape.block_m;
        svg += fmt::format(
            "<rect class=\"tile {}\" x=\"{}\" y=\"{}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"{}/>\n",
            style.name, margin + kt * cell, grid_top + qt * cell, w, h, style.fill, stroke);
      }
    }
    svg += "</g>\n";
    panel_top += panel_height;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace attnc
