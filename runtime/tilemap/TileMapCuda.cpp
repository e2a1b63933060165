#include "runtime/tilemap/TileMapCuda.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <unordered_map>
#include <variant>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/tilemap/tile_map.cuh"

namespace attnc::tilemap {

namespace {

constexpr const char* kFunction = "tile map (cuda)";

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// BuildParams<ModParams> is a fixed prefix, then the generated struct at its alignment.
constexpr size_t kModsUnaligned = offsetof(attnc_tile_map::BuildParams<char>, mods);

}  // namespace

TileMapKernel::TileMapKernel(TileMapPlan plan, std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods,
                             int device)
    : plan_(std::move(plan)), binary_(std::move(binary)), mods_(std::move(mods)), device_(device) {}

TileMapKernel::~TileMapKernel() = default;

cuda::CuFunction TileMapKernel::function(const std::string& name) const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver::get().use_device(device_);
  if (module_ == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(binary_->payload.begin(), binary_->payload.end()));
  }
  return module_->function(name);
}

std::vector<unsigned char> TileMapKernel::pack_build_arguments(const Mod& mask, const TileMapShape& shape,
                                                               const std::vector<Tensor>& summaries, void* counts,
                                                               void* entries, int32_t batch_stride,
                                                               int32_t head_stride) const {
  std::vector<ir::ParamBinding> bindings = cuda::launch_mod_bindings(kFunction, mask);
  for (const Tensor& summary : summaries) {
    bindings.emplace_back(ir::TensorArg{summary.data(), summary.dtype(), summary.shape(), summary.strides()});
  }
  const std::vector<unsigned char> mod_bytes = cuda::pack_mod_params(mods_, {}, bindings);
  attnc_tile_map::BuildParams<char> p{};
  p.counts = static_cast<int32_t*>(counts);
  p.entries = static_cast<int32_t*>(entries);
  p.batch_stride = batch_stride;
  p.head_stride = head_stride;
  p.capacity = shape.kv_tiles();
  p.q_tiles = shape.q_tiles();
  p.batch = shape.batch, p.num_heads = shape.heads, p.num_kv_heads = shape.kv_heads;
  p.q_len = shape.q_len, p.kv_len = shape.kv_len, p.q_offset = shape.q_offset;
  p.block_m = shape.block_m, p.block_n = shape.block_n;
  const size_t mods_offset = align_up(kModsUnaligned, mods_.params_align);
  std::vector<unsigned char> bytes(align_up(mods_offset + mods_.params_size, std::max<size_t>(8, mods_.params_align)),
                                   0);
  std::memcpy(bytes.data(), &p, kModsUnaligned);
  ATTNC_ASSERT(mod_bytes.size() == mods_.params_size, "packed ModParams size");
  std::memcpy(bytes.data() + mods_offset, mod_bytes.data(), mod_bytes.size());
  return bytes;
}

TileMap TileMapKernel::build(const Mod& mask, const TileMapShape& shape, cuda::CuStream stream) const {
  if (mask.kind() != dsl::ModKind::Mask || mask.signature() != *plan_.spec.mask.signature()) {
    throw RuntimeError(
        fmt::format("{}: {} is not the mask mod the pre-pass was compiled for", kFunction, mask.describe()));
  }
  if (!mask.fully_bound()) throw RuntimeError(fmt::format("{}: {} is not fully bound", kFunction, mask.describe()));
  if (shape.block_m != plan_.spec.block_m || shape.block_n != plan_.spec.block_n) {
    throw RuntimeError(fmt::format("{}: the pre-pass was compiled for tiles {}x{}, the call asks for {}x{}", kFunction,
                                   plan_.spec.block_m, plan_.spec.block_n, shape.block_m, shape.block_n));
  }
  const ir::TileMapClassifier& classifier = plan_.classifier;
  cuda::CudaDriver& driver = cuda::CudaDriver::get();

  // The summaries, one kernel each.
  std::vector<Tensor> summaries;
  for (size_t k = 0; k < classifier.summaries.size(); ++k) {
    const ir::BlockSummary& summary = classifier.summaries[k];
    const Tensor& source = std::get<Tensor>(*mask.argument(summary.param));
    if (source.device() != Device::Cuda) {
      throw RuntimeError(fmt::format("{}: {}: tensor parameter '{}' must be a CUDA tensor, got {}", kFunction,
                                     mask.describe(), mask.def().params[summary.param].name, source.describe()));
    }
    attnc_tile_map::SummaryParams params{};
    params.source.data = source.data();
    params.source.rank = static_cast<int32_t>(source.rank());
    std::vector<int64_t> blocks;
    params.count = 1;
    for (size_t d = 0; d < source.rank(); ++d) {
      params.source.shape[d] = source.size(d);
      params.source.strides[d] = source.stride(d);
      params.block[d] = summary.block[d];
      params.blocks[d] = (source.size(d) + summary.block[d] - 1) / summary.block[d];
      blocks.push_back(params.blocks[d]);
      params.count *= params.blocks[d];
    }
    const DType type = summary.elem == ir::Type::Float ? DType::F32 : DType::I32;
    summaries.push_back(cuda::empty_device_tensor(type, blocks));
    summaries.push_back(cuda::empty_device_tensor(type, blocks));
    params.minima = summaries[summaries.size() - 2].data();
    params.maxima = summaries.back().data();
    void* arguments[] = {&params};
    const auto grid = static_cast<unsigned>((params.count + kThreads - 1) / kThreads);
    driver.launch(function(summary_entry(k)), grid, 1, 1, kThreads, 1, 1, 0, stream, arguments);
  }

  // The map.
  const int32_t q_tiles = shape.q_tiles();
  const int32_t batches = classifier.reads_batch ? shape.batch : 1;
  const int32_t heads = classifier.reads_head ? shape.heads : 1;
  const int32_t head_stride = classifier.reads_head ? q_tiles : 0;
  const int32_t batch_stride = classifier.reads_batch ? heads * q_tiles : 0;
  const int64_t rows = int64_t(batches) * heads * q_tiles;
  Tensor counts = cuda::empty_device_tensor(DType::I32, {rows});
  Tensor entries = cuda::empty_device_tensor(DType::I32, {rows, std::max<int64_t>(shape.kv_tiles(), 1)});
  if (rows > 0) {
    std::vector<unsigned char> bytes =
        pack_build_arguments(mask, shape, summaries, counts.data(), entries.data(), batch_stride, head_stride);
    void* arguments[] = {bytes.data()};
    using Build = attnc_tile_map::BuildTileMap<void, char>;
    driver.launch(function(kBuildEntry), static_cast<unsigned>(q_tiles), static_cast<unsigned>(heads),
                  static_cast<unsigned>(batches), kThreads, 1, 1, Build::kSharedBytes, stream, arguments);
  }
  return TileMap(mask, shape, std::move(counts), std::move(entries), batch_stride, head_stride, std::move(summaries));
}

std::shared_ptr<const TileMapKernel> load_tile_map_kernel(const TileMapPlan& plan, KernelCache& cache, int device) {
  ir::CudaModSource mods = tile_map_mods(plan);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kBuildEntry, [&] { return tile_map_program(plan, mods); }, tile_map_nvrtc_options(plan.spec));
  return std::make_shared<const TileMapKernel>(plan, std::move(binary.kernel), std::move(mods), device);
}

TileMap build_tile_map_cuda(const Mod& mask, const TileMapShape& shape, const std::string& arch,
                            cuda::CuStream stream) {
  TileMapSpec spec;
  spec.mask = ModSpec::of(&mask);
  spec.block_m = shape.block_m;
  spec.block_n = shape.block_n;
  spec.arch = arch;
  const TileMapPlan plan = plan_tile_map_kernel(std::move(spec));
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const TileMapKernel>> loaded;
  const std::string text = plan.key.serialize();
  std::shared_ptr<const TileMapKernel> kernel;
  {
    std::lock_guard guard(mutex);
    if (auto it = loaded.find(text); it != loaded.end()) kernel = it->second;
  }
  if (!kernel) {
    kernel = load_tile_map_kernel(plan, cuda::default_kernel_cache());
    std::lock_guard guard(mutex);
    loaded.emplace(text, kernel);
  }
  return kernel->build(mask, shape, stream);
}

}  // namespace attnc::tilemap
