#include "runtime/tilemap/TileMapSource.h"

#include <fmt/format.h>

#include "compiler/IR.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/KernelSource.h"

namespace attnc::tilemap {

namespace {

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers = cuda::embedded_headers({"tile_map.cuh"});
  return headers;
}

const std::string& family_template_hash() {
  static const std::string hash = cuda::template_hash(family_headers());
  return hash;
}

const char* storage_name(DType storage) {
  switch (storage) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::Bool: return "Bool";
  }
  return "?";
}

}  // namespace

std::string summary_entry(size_t summary) { return fmt::format("attnc_tile_map_summary{}", summary); }

TileMapPlan plan_tile_map_kernel(TileMapSpec spec) {
  if (!spec.mask || spec.mask.def->kind != dsl::ModKind::Mask) {
    throw RuntimeError("tile map: the pre-pass needs a mask mod");
  }
  if (spec.block_m <= 0 || spec.block_n <= 0) throw RuntimeError("tile map: the tiles must have positive sizes");
  TileMapPlan plan;
  plan.classifier = ir::build_tile_map_classifier(*spec.mask.def, spec.block_m, spec.block_n);
  const std::vector<ir::ParamDecl>& mask_params = spec.mask.def->params;
  for (size_t i = 0; i < plan.classifier.params.size(); ++i) {
    if (i < mask_params.size()) {
      plan.storage.push_back(i < spec.mask.storage.size() ? spec.mask.storage[i]
                                                          : ir::default_storage(mask_params[i].elem));
    } else {
      plan.storage.push_back(plan.classifier.params[i].elem == ir::Type::Float ? DType::F32 : DType::I32);
    }
  }
  KernelKey& key = plan.key;
  key.family = kFamily;
  key.add("mask_mod", spec.mask.signature()->hex());
  key.add("block_m", std::to_string(spec.block_m));
  key.add("block_n", std::to_string(spec.block_n));
  cuda::add_cuda_key_fields(key, tile_map_nvrtc_options(spec), family_template_hash());
  plan.spec = std::move(spec);
  return plan;
}

ir::CudaModSource tile_map_mods(const TileMapPlan& plan) {
  // The parameter struct comes from the code generator's mask path, for a mask that keeps everything
  // and declares the classifier's parameters; the classifier itself is one generated expression.
  ir::ModDef carrier;
  carrier.name = "tile_map";
  carrier.kind = dsl::ModKind::Mask;
  carrier.params = plan.classifier.params;
  carrier.body = ir::make_bool(true);
  ir::CudaModSource mods = ir::generate_cuda_mods(nullptr, {}, &carrier, plan.storage);
  mods.text += "\nnamespace attnc_gen {\n\n";
  mods.text += ir::generate_cuda_expr_function(plan.classifier.expr, "tile_map_class", plan.classifier.params,
                                               plan.storage, false);
  mods.text += "\n}  // namespace attnc_gen\n";
  return mods;
}

cuda::NvrtcOptions tile_map_nvrtc_options(const TileMapSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  return options;
}

cuda::KernelProgram tile_map_program(const TileMapPlan& plan, const ir::CudaModSource& mods) {
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  std::string& main = program.source;
  main +=
      fmt::format("// attnc tile-map pre-pass: tiles {}x{} {}\n", plan.spec.block_m, plan.spec.block_n, plan.spec.arch);
  main += "#include \"tile_map.cuh\"\n";
  main += fmt::format("#include \"{}\"\n\n", cuda::kGeneratedModsHeader);
  main +=
      "struct TileMapClassifier {\n"
      "  static ATTNC_DEVICE int classify(const attnc_abi::TileBox& box, const attnc_abi::ModPoint& point,\n"
      "                                   const attnc_gen::ModParams& params) {\n"
      "    return attnc_gen::tile_map_class(0.0f, point, box, params, nullptr);\n"
      "  }\n"
      "};\n\n";
  main += fmt::format("ATTNC_INSTANTIATE_TILE_MAP_BUILD({}, TileMapClassifier, attnc_gen::ModParams)\n", kBuildEntry);
  for (size_t k = 0; k < plan.classifier.summaries.size(); ++k) {
    const ir::BlockSummary& summary = plan.classifier.summaries[k];
    main += fmt::format("ATTNC_INSTANTIATE_TILE_MAP_SUMMARY({}, {}, {}, {})\n", summary_entry(k),
                        storage_name(plan.storage[summary.param]), summary.elem == ir::Type::Float ? "true" : "false",
                        summary.block.size());
  }
  return program;
}

}  // namespace attnc::tilemap
