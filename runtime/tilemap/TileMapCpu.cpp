#include "runtime/tilemap/TileMapCpu.h"

#include <algorithm>
#include <limits>
#include <variant>

#include <fmt/format.h>

#include "compiler/Interpreter.h"
#include "compiler/Semantics.h"
#include "compiler/TileMapClassifier.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

ir::TensorArg tensor_arg(const Tensor& t) { return ir::TensorArg{t.data(), t.dtype(), t.shape(), t.strides()}; }

}  // namespace

Tensor summarize_blocks(const Tensor& source, ir::Type elem, std::span<const int64_t> block, bool minima) {
  const size_t rank = source.rank();
  if (block.size() != rank) throw RuntimeError("summarize_blocks: one block extent per dimension");
  std::vector<int64_t> blocks(rank);
  for (size_t d = 0; d < rank; ++d) blocks[d] = (source.size(d) + block[d] - 1) / block[d];
  const bool is_float = elem == ir::Type::Float;
  Tensor out = Tensor::empty(is_float ? DType::F32 : DType::I32, blocks);
  const int64_t count = out.numel();
  std::vector<int64_t> at(rank, 0), from(rank), to(rank), index(rank);
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i;
    for (size_t d = rank; d-- > 0;) {
      const int64_t j = rest % blocks[d];
      rest /= blocks[d];
      from[d] = j * block[d];
      to[d] = std::min(from[d] + block[d], source.size(d)) - 1;
    }
    // The block's elements in C order (an odometer), reduced as the interpreter reduces a LoadRange.
    float float_acc = std::numeric_limits<float>::quiet_NaN();
    int32_t int_acc = minima ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min();
    index = from;
    while (true) {
      int64_t offset = 0;
      for (size_t d = 0; d < rank; ++d) offset += index[d] * source.stride(d);
      if (is_float) {
        const float v = load_as_float(source.data(), source.dtype(), offset);
        float_acc = minima ? ir::float_min(float_acc, v) : ir::float_max(float_acc, v);
      } else {
        const auto v = static_cast<int32_t>(load_as_int(source.data(), source.dtype(), offset));
        int_acc = minima ? std::min(int_acc, v) : std::max(int_acc, v);
      }
      size_t d = rank;
      while (d > 0 && index[d - 1] == to[d - 1]) {
        index[d - 1] = from[d - 1];
        --d;
      }
      if (d == 0) break;
      ++index[d - 1];
    }
    if (is_float) {
      static_cast<float*>(out.data())[i] = float_acc;
    } else {
      static_cast<int32_t*>(out.data())[i] = int_acc;
    }
  }
  return out;
}

TileMap build_tile_map_cpu(const Mod& mask, const TileMapShape& shape) {
  if (mask.kind() != dsl::ModKind::Mask)
    throw RuntimeError(fmt::format("tile map: {} is not a mask mod", mask.describe()));
  if (shape.block_m <= 0 || shape.block_n <= 0) throw RuntimeError("tile map: the tiles must have positive sizes");
  const ir::TileMapClassifier classifier = ir::build_tile_map_classifier(mask.def(), shape.block_m, shape.block_n);
  // bind_into refuses unbound parameters and tensors off the CPU.
  ir::Environment env = mask.environment(shape.q_len, shape.kv_len, shape.heads, shape.kv_heads);
  std::vector<Tensor> summaries;
  for (const ir::BlockSummary& summary : classifier.summaries) {
    const Tensor& source = std::get<Tensor>(*mask.argument(summary.param));
    for (bool minima : {true, false}) {
      summaries.push_back(summarize_blocks(source, summary.elem, summary.block, minima));
      env.params.push_back(tensor_arg(summaries.back()));
    }
  }
  const ir::CompiledExpr classify(classifier.expr);

  const int32_t q_tiles = shape.q_tiles(), kv_tiles = shape.kv_tiles();
  const int32_t batches = classifier.reads_batch ? shape.batch : 1;
  const int32_t heads = classifier.reads_head ? shape.heads : 1;
  const int32_t head_stride = classifier.reads_head ? q_tiles : 0;
  const int32_t batch_stride = classifier.reads_batch ? heads * q_tiles : 0;
  const int64_t rows = int64_t(batches) * heads * q_tiles;
  Tensor counts = Tensor::zeros(DType::I32, {rows});
  Tensor entries = Tensor::zeros(DType::I32, {rows, std::max<int64_t>(kv_tiles, 1)});
  auto* count_data = static_cast<int32_t*>(counts.data());
  auto* entry_data = static_cast<int32_t*>(entries.data());
  for (int32_t b = 0; b < batches; ++b) {
    env.set(ir::Builtin::Batch, ir::Value::of_int(b));
    for (int32_t h = 0; h < heads; ++h) {
      env.set(ir::Builtin::Head, ir::Value::of_int(h));
      for (int32_t qt = 0; qt < q_tiles; ++qt) {
        const int64_t row = int64_t(b) * batch_stride + int64_t(h) * head_stride + qt;
        env.set(ir::Builtin::QTileFirst, ir::Value::of_int(shape.q_offset + qt * shape.block_m));
        env.set(ir::Builtin::QTileLast,
                ir::Value::of_int(shape.q_offset + std::min(shape.q_len, (qt + 1) * shape.block_m) - 1));
        int32_t count = 0;
        for (int32_t kt = 0; kt < kv_tiles; ++kt) {
          env.set(ir::Builtin::KvTileFirst, ir::Value::of_int(kt * shape.block_n));
          env.set(ir::Builtin::KvTileLast, ir::Value::of_int(std::min(shape.kv_len, (kt + 1) * shape.block_n) - 1));
          const int32_t tile_class = classify.evaluate(env).as_int();
          if (tile_class == 0) continue;
          entry_data[row * kv_tiles + count++] = attnc_abi::tile_map_entry(kt, tile_class == 2);
        }
        count_data[row] = count;
      }
    }
  }
  return TileMap(mask, shape, std::move(counts), std::move(entries), batch_stride, head_stride, std::move(summaries));
}

}  // namespace attnc
