#include "runtime/tilemap/TileMap.h"

#include <variant>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

bool same_argument(const Mod::Argument& a, const Mod::Argument& b) {
  if (a.index() != b.index()) return false;
  if (const auto* value = std::get_if<ir::Value>(&a)) {
    return ir::identical(*value, std::get<ir::Value>(b));
  }
  const Tensor& x = std::get<Tensor>(a);
  const Tensor& y = std::get<Tensor>(b);
  return x.data() == y.data() && x.dtype() == y.dtype() && x.device() == y.device() && x.shape() == y.shape() &&
         x.strides() == y.strides();
}

}  // namespace

std::string TileMapShape::describe() const {
  return fmt::format("B={} H={} Hkv={} q_len={} kv_len={} q_offset={} tiles {}x{}", batch, heads, kv_heads, q_len,
                     kv_len, q_offset, block_m, block_n);
}

TileMap::TileMap(Mod mask, TileMapShape shape, Tensor counts, Tensor entries, int32_t batch_stride, int32_t head_stride,
                 std::vector<Tensor> keep_alive)
    : mask_(std::move(mask)),
      shape_(shape),
      counts_(std::move(counts)),
      entries_(std::move(entries)),
      batch_stride_(batch_stride),
      head_stride_(head_stride),
      keep_alive_(std::move(keep_alive)) {}

attnc_abi::TileMapView TileMap::view() const {
  return attnc_abi::TileMapView{static_cast<const int32_t*>(counts_.data()),
                                static_cast<const int32_t*>(entries_.data()),
                                batch_stride_,
                                head_stride_,
                                shape_.kv_tiles(),
                                shape_.q_tiles()};
}

void TileMap::check_matches(const char* function, const Mod& mask, const TileMapShape& shape) const {
  if (!(shape == shape_)) {
    throw RuntimeError(fmt::format("{}: the tile map was built for {}, but the call needs {}", function,
                                   shape_.describe(), shape.describe()));
  }
  if (mask.signature() != mask_.signature()) {
    throw RuntimeError(fmt::format("{}: the tile map was built for {}, not for the call's {}", function,
                                   mask_.describe(), mask.describe()));
  }
  for (size_t i = 0; i < mask.def().params.size(); ++i) {
    const auto& want = mask_.argument(i);
    const auto& got = mask.argument(i);
    if (!want || !got || !same_argument(*want, *got)) {
      throw RuntimeError(fmt::format(
          "{}: the tile map was built with another argument for parameter '{}' of {}; build a map for these "
          "arguments (a map can be reused only while the mask's arguments stay the same)",
          function, mask.def().params[i].name, mask.describe()));
    }
  }
}

int TileMap::tile_class(int32_t b, int32_t h, int32_t q_tile, int32_t kv_tile) const {
  if (device() != Device::Cpu) throw RuntimeError("TileMap::tile_class needs a map on the CPU");
  const attnc_abi::TileMapView v = view();
  const int64_t row = int64_t(b) * v.batch_stride + int64_t(h) * v.head_stride + q_tile;
  for (int32_t i = 0; i < v.counts[row]; ++i) {
    const int32_t entry = v.entries[row * v.capacity + i];
    if (attnc_abi::tile_map_kv_tile(entry) == kv_tile) return attnc_abi::tile_map_partial(entry) ? 2 : 1;
  }
  return 0;
}

int64_t TileMap::live_tiles() const {
  if (device() != Device::Cpu) throw RuntimeError("TileMap::live_tiles needs a map on the CPU");
  int64_t total = 0;
  const auto* counts = static_cast<const int32_t*>(counts_.data());
  for (int64_t i = 0; i < counts_.numel(); ++i) total += counts[i];
  return total;
}

}  // namespace attnc
