// The tile-map pre-pass (runtime/tilemap/tile_map.cuh) run under the host emulation with the
// generated classifiers of the built-in masks (written at build time by
// tests/generators/GenerateTileMapTestCode.cpp), arguments packed as the CUDA builder packs them:
// its summaries and its maps must be the CPU builder's, entry for entry. And the pre-pass compiled
// by NVRTC (no GPU needed).

#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/tilemap/tile_map.cuh"

#include "attnc_test_tile_maps.cuh"
#include "runtime/core/Mods.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/tilemap/TileMapCpu.h"
#include "runtime/tilemap/TileMapSource.h"
#include "tests/support/CudaTesting.h"

using namespace attnc;
namespace emu = attnc::host_emulation;

namespace {

ir::TensorArg tensor_arg(const Tensor& t) { return ir::TensorArg{t.data(), t.dtype(), t.shape(), t.strides()}; }

// Runs the pre-pass for `mask` with the generated traits `Gen` and compares it with the CPU map.
template <class Gen>
void check_prepass(const Mod& mask, TileMapShape s) {
  REQUIRE(std::string(Gen::kMaskSignature) == mask.signature().hex());
  s.block_m = Gen::kBlockM;
  s.block_n = Gen::kBlockN;
  CAPTURE(s.describe());
  tilemap::TileMapSpec spec;
  spec.mask = ModSpec::of(&mask);
  spec.block_m = s.block_m;
  spec.block_n = s.block_n;
  const tilemap::TileMapPlan plan = tilemap::plan_tile_map_kernel(spec);
  const ir::CudaModSource layout = tilemap::tile_map_mods(plan);
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));

  // Summaries, one emulated kernel each.
  std::vector<Tensor> summaries;
  for (size_t k = 0; k < plan.classifier.summaries.size(); ++k) {
    const ir::BlockSummary& summary = plan.classifier.summaries[k];
    const Tensor& source = std::get<Tensor>(*mask.argument(summary.param));
    attnc_tile_map::SummaryParams p{};
    p.source.data = source.data();
    p.source.rank = int32_t(source.rank());
    p.count = 1;
    std::vector<int64_t> blocks;
    for (size_t d = 0; d < source.rank(); ++d) {
      p.source.shape[d] = source.size(d);
      p.source.strides[d] = source.stride(d);
      p.block[d] = summary.block[d];
      p.blocks[d] = (source.size(d) + summary.block[d] - 1) / summary.block[d];
      blocks.push_back(p.blocks[d]);
      p.count *= p.blocks[d];
    }
    const DType type = summary.elem == ir::Type::Float ? DType::F32 : DType::I32;
    summaries.push_back(Tensor::empty(type, blocks));
    summaries.push_back(Tensor::empty(type, blocks));
    p.minima = summaries[summaries.size() - 2].data();
    p.maxima = summaries.back().data();
    emu::launch(emu::Dim3{uint32_t((p.count + 127) / 128), 1, 1}, emu::Dim3{128, 1, 1}, 0,
                [&p, k] { Gen::summarize(int(k), p); });
    // The same as the CPU builder's.
    for (int minima = 0; minima < 2; ++minima) {
      const Tensor expected = summarize_blocks(source, summary.elem, summary.block, minima == 1);
      const Tensor& got = summaries[summaries.size() - 2 + (minima == 1 ? 0 : 1)];
      REQUIRE(std::memcmp(got.data(), expected.data(), size_t(got.numel()) * 4) == 0);
    }
  }

  // The map.
  const TileMap reference = build_tile_map_cpu(mask, s);
  ir::Environment env;
  mask.bind_into(env);
  std::vector<ir::ParamBinding> bindings = env.params;
  for (const Tensor& t : summaries) bindings.emplace_back(tensor_arg(t));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, {}, bindings);
  const int32_t rows = int32_t(reference.counts().numel());
  std::vector<int32_t> counts(size_t(rows), -1), entries(size_t(rows) * s.kv_tiles(), -1);
  attnc_tile_map::BuildParams<typename Gen::Params> p{};
  std::memcpy(static_cast<void*>(&p.mods), bytes.data(), bytes.size());
  p.counts = counts.data();
  p.entries = entries.data();
  p.batch_stride = reference.batch_stride();
  p.head_stride = reference.head_stride();
  p.capacity = s.kv_tiles();
  p.q_tiles = s.q_tiles();
  p.batch = s.batch, p.num_heads = s.heads, p.num_kv_heads = s.kv_heads;
  p.q_len = s.q_len, p.kv_len = s.kv_len, p.q_offset = s.q_offset, p.block_m = s.block_m, p.block_n = s.block_n;
  const uint32_t batches = reference.batch_stride() != 0 ? uint32_t(s.batch) : 1;
  const uint32_t heads = reference.head_stride() != 0 ? uint32_t(s.heads) : 1;
  using Build = attnc_tile_map::BuildTileMap<Gen, typename Gen::Params>;
  emu::launch(emu::Dim3{uint32_t(s.q_tiles()), heads, batches}, emu::Dim3{Build::kThreads, 1, 1}, Build::kSharedBytes,
              [&p] { Build::run(p); });
  const auto* want_counts = static_cast<const int32_t*>(reference.counts().data());
  const auto* want_entries = static_cast<const int32_t*>(reference.entries().data());
  for (int32_t row = 0; row < rows; ++row) {
    CAPTURE(row);
    REQUIRE(counts[size_t(row)] == want_counts[row]);
    for (int32_t i = 0; i < counts[size_t(row)]; ++i) {
      REQUIRE(entries[size_t(row) * s.kv_tiles() + i] == want_entries[int64_t(row) * s.kv_tiles() + i]);
    }
  }
}

Tensor document_ids(std::mt19937& rng, int batch, int len, DType dtype = DType::I32) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    int32_t id = 0;
    for (int i = 0; i < len; ++i) {
      if (i > 0 && std::uniform_int_distribution<int>(0, 15)(rng) == 0) ++id;
      ids.push_back(id);
    }
  }
  return Tensor::from_vector(ids, {batch, len}, dtype);
}

}  // namespace

TEST_CASE("the emulated tile-map pre-pass builds the CPU builder's maps for the built-in masks",
          "[runtime][tilemap][emulation]") {
  std::mt19937 rng(9);
  // More key tiles than the pre-pass's 128 threads, so the compaction runs several rounds.
  const std::vector<TileMapShape> shapes = {
      {2, 2, 1, 300, 2100, 0, 0, 0}, {1, 3, 3, 45, 83, 17, 0, 0}, {2, 1, 1, 200, 150, 64, 0, 0}};
  for (const TileMapShape& s : shapes) {
    const int len = std::max(s.q_offset + s.q_len, s.kv_len);
    check_prepass<TileMapGen_causal>(causal_mod(), s);
    check_prepass<TileMapGen_causal_bottom_right>(causal_bottom_right_mod(), s);
    check_prepass<TileMapGen_window_causal>(sliding_window_mod(40, true), s);
    check_prepass<TileMapGen_window_symmetric>(sliding_window_mod(70, false), s);
    check_prepass<TileMapGen_prefix_lm>(prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{37, 3})),
                                        TileMapShape{2, s.heads, s.kv_heads, s.q_len, s.kv_len, s.q_offset, 0, 0});
    const Tensor ids = document_ids(rng, s.batch, len);
    check_prepass<TileMapGen_document>(document_mask_mod(ids), s);
    check_prepass<TileMapGen_document_i64>(document_mask_mod(document_ids(rng, s.batch, len, DType::I64)), s);
    check_prepass<TileMapGen_document_causal>(and_masks({document_mask_mod(ids), causal_mod()}), s);
  }
}

TEST_CASE("the tile-map pre-pass compiles with NVRTC", "[runtime][tilemap][nvrtc]") {
  if (!test::nvrtc_or_warn()) return;
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>(2 * 64, 0), {2, 64});
  for (const Mod& mask : {causal_mod(), document_mask_mod(ids), and_masks({document_mask_mod(ids), causal_mod()})}) {
    CAPTURE(mask.describe());
    tilemap::TileMapSpec spec;
    spec.mask = ModSpec::of(&mask);
    const tilemap::TileMapPlan plan = tilemap::plan_tile_map_kernel(spec);
    CHECK(plan.key.family == "tile_map");
    CHECK(*plan.key.find("block_n") == "128");
    const cuda::CompiledKernel compiled = cuda::Nvrtc::get().compile(
        tilemap::tile_map_program(plan, tilemap::tile_map_mods(plan)), tilemap::tile_map_nvrtc_options(plan.spec));
    CHECK(compiled.ptx.find(".entry attnc_tile_map_build") != std::string::npos);
    CHECK((compiled.ptx.find(".entry attnc_tile_map_summary0") != std::string::npos) ==
          !plan.classifier.summaries.empty());
  }
}
