#include "runtime/tilemap/TileMapReport.h"

#include <algorithm>

#include "compiler/Interpreter.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/tilemap/TileMapCpu.h"

namespace attnc {

namespace {

// The mask evaluated element by element over one (b, h), reusing one tape and one environment.
class ElementMask {
 public:
  ElementMask(const Mod& mask, const TileMapShape& shape, int32_t b, int32_t h)
      : shape_(shape),
        b_(b),
        h_(h),
        expr_(mask.def().body),
        env_(mask.environment(shape.q_len, shape.kv_len, shape.heads, shape.kv_heads)) {}

  bool kept(int32_t q, int32_t kv) {
    env_.set_point(b_, h_, shape_.q_offset + q, kv);
    return expr_.evaluate(env_).as_bool();
  }

 private:
  TileMapShape shape_;
  int32_t b_, h_;
  ir::CompiledExpr expr_;
  ir::Environment env_;
};

int64_t tile_elements(const TileMapShape& shape, int32_t qt, int32_t kt) {
  const int64_t rows = std::min(shape.q_len, (qt + 1) * shape.block_m) - qt * shape.block_m;
  const int64_t cols = std::min(shape.kv_len, (kt + 1) * shape.block_n) - kt * shape.block_n;
  return rows * cols;
}

}  // namespace

double TileMapReport::kept_tile_fraction() const {
  int64_t kept = 0, all = 0;
  for (const TileMapSlice& s : slices) {
    kept += s.full + s.partial;
    all += s.empty + s.full + s.partial;
  }
  return all == 0 ? 0.0 : double(kept) / double(all);
}

double TileMapReport::kept_work_fraction() const {
  int64_t kept = 0;
  for (const TileMapSlice& s : slices) kept += s.kept_tile_elements;
  const int64_t all = elements_per_slice() * int64_t(slices.size());
  return all == 0 ? 0.0 : double(kept) / double(all);
}

std::optional<double> TileMapReport::kept_element_fraction() const {
  int64_t kept = 0;
  for (const TileMapSlice& s : slices) {
    if (!s.kept_elements) return std::nullopt;
    kept += *s.kept_elements;
  }
  const int64_t all = elements_per_slice() * int64_t(slices.size());
  return all == 0 ? std::nullopt : std::optional<double>(double(kept) / double(all));
}

TileMapReport explain_tile_map(const Mod& mask, const TileMapShape& shape, const TileMapReportLimits& limits) {
  if (shape.q_len <= 0 || shape.kv_len <= 0 || shape.batch <= 0 || shape.heads <= 0) {
    throw RuntimeError("tile map report: the sizes must be positive");
  }
  const TileMap map = build_tile_map_cpu(mask, shape);
  TileMapReport report;
  report.shape = shape;
  const int32_t q_tiles = shape.q_tiles(), kv_tiles = shape.kv_tiles();
  const bool per_batch = map.batch_stride() != 0, per_head = map.head_stride() != 0;
  const int32_t batches = per_batch ? shape.batch : 1, heads = per_head ? shape.heads : 1;
  const bool exact = int64_t(shape.q_len) * shape.kv_len * batches * heads <= limits.max_exact_elements;
  const bool small = shape.q_len <= limits.max_element_grid && shape.kv_len <= limits.max_element_grid;
  for (int32_t b = 0; b < batches; ++b) {
    for (int32_t h = 0; h < heads; ++h) {
      TileMapSlice slice;
      slice.b = per_batch ? b : -1;
      slice.h = per_head ? h : -1;
      slice.classes.resize(size_t(q_tiles) * kv_tiles);
      for (int32_t qt = 0; qt < q_tiles; ++qt) {
        for (int32_t kt = 0; kt < kv_tiles; ++kt) {
          const auto c = static_cast<TileClass>(map.tile_class(b, h, qt, kt));
          slice.classes[size_t(qt) * kv_tiles + kt] = c;
          (c == TileClass::Empty ? slice.empty : c == TileClass::Full ? slice.full : slice.partial) += 1;
          if (c != TileClass::Empty) slice.kept_tile_elements += tile_elements(shape, qt, kt);
        }
      }
      if (exact) {
        ElementMask element(mask, shape, b, h);
        int64_t kept = 0;
        if (small) slice.element_mask.resize(size_t(shape.q_len) * shape.kv_len);
        for (int32_t q = 0; q < shape.q_len; ++q) {
          for (int32_t kv = 0; kv < shape.kv_len; ++kv) {
            const bool keep = element.kept(q, kv);
            kept += keep;
            if (small) slice.element_mask[size_t(q) * shape.kv_len + kv] = keep;
          }
        }
        slice.kept_elements = kept;
      }
      report.slices.push_back(std::move(slice));
    }
  }
  return report;
}

char tile_class_char(TileClass c) { return c == TileClass::Empty ? '.' : c == TileClass::Full ? '#' : '+'; }

std::string tile_grid_text(const TileMapReport& report, const TileMapSlice& slice) {
  const int32_t q_tiles = report.shape.q_tiles(), kv_tiles = report.shape.kv_tiles();
  std::string out;
  out.reserve(size_t(q_tiles) * (kv_tiles + 1));
  for (int32_t qt = 0; qt < q_tiles; ++qt) {
    for (int32_t kt = 0; kt < kv_tiles; ++kt) out += tile_class_char(slice.classes[size_t(qt) * kv_tiles + kt]);
    out += '\n';
  }
  return out;
}

std::string element_grid_text(const TileMapReport& report, const TileMapSlice& slice) {
  const int32_t q_len = report.shape.q_len, kv_len = report.shape.kv_len;
  if (slice.element_mask.size() != size_t(q_len) * kv_len) {
    throw RuntimeError("tile map report: this slice has no element-level mask (the sizes are too large)");
  }
  std::string out;
  for (int32_t q = 0; q < q_len; ++q) {
    for (int32_t kv = 0; kv < kv_len; ++kv) out += slice.element_mask[size_t(q) * kv_len + kv] ? '#' : '.';
    out += '\n';
  }
  return out;
}

}  // namespace attnc
