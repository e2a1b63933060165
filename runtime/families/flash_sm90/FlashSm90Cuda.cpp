#include "runtime/families/flash_sm90/FlashSm90Cuda.h"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/BoundsReport.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/families/flash_sm90/flash_attention_sm90.cuh"
#include "runtime/tilemap/TileMapCuda.h"

namespace attnc::flash_sm90 {

namespace {

constexpr const char* kLaunch = "flash_attention (cuda, sm_90a)";

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// FlashSm90Params<attnc_gen::ModParams>: a fixed prefix (tensor maps first), the generated struct at
// its alignment, the BoundsReport pointer, padding to the struct's 64-byte alignment.
constexpr size_t kModsUnaligned = offsetof(attnc_flash_sm90::FlashSm90Params<char>, mods);
static_assert(alignof(attnc_flash_sm90::FlashSm90Params<char>) == 64, "tensor maps are 64-byte aligned");
static_assert(offsetof(attnc_flash_sm90::FlashSm90Params<attnc_abi::TensorParam>, mods) == align_up(kModsUnaligned, 8));

int32_t as_int32(int64_t value) { return static_cast<int32_t>(value); }

// What TMA needs of a tensor (B, H, S, D): 16-byte aligned data and strides, head dim contiguous,
// strides of extents above 1 not zero. Empty when fine, else what is wrong.
std::string tma_layout_problem(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data()) % 16 != 0)
    return fmt::format("must be 16-byte aligned, its data is at {}", t.data());
  if (t.stride(3) != 1) return "must have its last (head) dimension contiguous";
  for (size_t d = 0; d < 3; ++d) {
    if (t.size(d) > 1 && (t.stride(d) % 8 != 0 || t.stride(d) <= 0)) {
      return "must have positive strides that are multiples of 8 elements (16 bytes) for the tensor maps";
    }
  }
  return {};
}

void check_layout(const Tensor& t, const char* role) {
  const std::string problem = tma_layout_problem(t);
  if (!problem.empty()) throw RuntimeError(fmt::format("{}: {} {}, got {}", kLaunch, role, problem, t.describe()));
}

void driver_encoder(void* map, const TensorMapRequest& r, DType dtype) {
  cuda::CudaDriver::get().encode_tensor_map_tiled(
      map, dtype == DType::F16 ? cuda::CudaDriver::TensorMapElement::F16 : cuda::CudaDriver::TensorMapElement::BF16, 4,
      r.global, r.dims, r.strides, r.box, cuda::CudaDriver::TensorMapSwizzle::B128);
}

}  // namespace

TensorMapRequest attention_tensor_map(const Tensor& t, uint32_t box_rows) {
  TensorMapRequest r;
  r.global = t.data();
  r.dims[0] = uint64_t(t.size(3)), r.dims[1] = uint64_t(t.size(2));
  r.dims[2] = uint64_t(t.size(1)), r.dims[3] = uint64_t(t.size(0));
  // Byte strides of row, head and batch; one of extent 1 takes the span of the dimensions inside it.
  uint64_t span = uint64_t(t.size(3)) * 2;
  for (int i = 0; i < 3; ++i) {
    const size_t d = size_t(2 - i);
    r.strides[i] = t.size(d) == 1 ? align_up(span, 16) : uint64_t(t.stride(d)) * 2;
    span = r.strides[i] * uint64_t(t.size(d));
  }
  r.box[0] = 64, r.box[1] = box_rows, r.box[2] = 1, r.box[3] = 1;
  return r;
}

FlashSm90Kernel::FlashSm90Kernel(FlashSm90Plan plan, KernelKey key, CacheSource source,
                                 std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods, int device)
    : plan_(std::move(plan)),
      key_(std::move(key)),
      source_(source),
      binary_(std::move(binary)),
      mods_(std::move(mods)),
      device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(
        fmt::format("kernel cache entry {} is a '{}' kernel, not a Hopper flash kernel", key_.hash_hex(), key_.family));
  }
  shared_bytes_ = flash_sm90_shared_bytes(plan_.tiles, plan_.spec.head_dim, plan_.spec.head_dim_v);
}

FlashSm90Kernel::~FlashSm90Kernel() = default;

cuda::CuFunction FlashSm90Kernel::function() const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.use_device(device_);
  if (function_ == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    cuda::CuFunction function = module_->function(kEntry);
    driver.set_max_dynamic_shared(function, static_cast<int>(shared_bytes_));
    function_ = function;
  }
  return function_;
}

TileMapShape FlashSm90Kernel::tile_map_shape(const Tensor& q, const Tensor& k, const AttentionOptions& options) const {
  TileMapShape s;
  s.batch = as_int32(q.size(0)), s.heads = as_int32(q.size(1)), s.kv_heads = as_int32(k.size(1));
  s.q_len = as_int32(q.size(2)), s.kv_len = as_int32(k.size(2));
  s.q_offset = options.q_offset;
  s.block_m = kBlockM;
  s.block_n = plan_.tiles.block_n;
  return s;
}

std::vector<unsigned char> FlashSm90Kernel::pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v,
                                                           const Tensor& out, const Tensor* lse,
                                                           const AttentionOptions& options,
                                                           const attnc_abi::TileMapView& map, void* bounds,
                                                           const TensorMapEncoder& encode) const {
  const FlashSm90Spec& spec = plan_.spec;
  Tensor lse_view = lse != nullptr ? *lse : Tensor();
  const AttentionShape shape = check_attention_args(
      kLaunch, q, k, v, out, options, lse != nullptr ? &lse_view : nullptr, TensorRule{Device::Cuda, spec.dtype});
  if (shape.head_dim != spec.head_dim || shape.value_dim != spec.head_dim_v) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled for head dims {}/{} (q/k, v), got q {}, k {}, v {}",
                                   kLaunch, spec.head_dim, spec.head_dim_v, q.describe(), k.describe(), v.describe()));
  }
  if (options.check_bounds != spec.check_bounds) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} bounds checking, but the launch asks {} it", kLaunch,
                                   spec.check_bounds ? "with" : "without", options.check_bounds ? "for" : "not for"));
  }
  check_layout(q, "q");
  check_layout(k, "k");
  check_layout(v, "v");
  check_layout(out, "out");
  const std::vector<unsigned char> mod_bytes =
      cuda::pack_launch_mods(kLaunch, mods_, options.score_mod, spec.score, options.mask_mod, spec.mask);

  auto p = std::make_unique<attnc_flash_sm90::FlashSm90Params<char>>();
  encode(&p->q_map, attention_tensor_map(q, 64));
  encode(&p->k_map, attention_tensor_map(k, uint32_t(plan_.tiles.block_n)));
  encode(&p->v_map, attention_tensor_map(v, uint32_t(plan_.tiles.block_n)));
  encode(&p->out_map, attention_tensor_map(out, 64));
  p->lse = lse != nullptr ? static_cast<float*>(lse->data()) : nullptr;
  if (lse != nullptr) {
    p->lse_batch_stride = lse->stride(0), p->lse_head_stride = lse->stride(1), p->lse_row_stride = lse->stride(2);
  }
  p->tile_map = spec.mask ? map : attnc_abi::TileMapView{nullptr, nullptr, 0, 0, 0, 0};
  p->batch = as_int32(shape.batch);
  p->num_heads = as_int32(shape.heads);
  p->num_kv_heads = as_int32(shape.kv_heads);
  p->q_len = as_int32(shape.q_len);
  p->kv_len = as_int32(shape.kv_len);
  p->q_offset = options.q_offset;
  p->scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.head_dim)));

  const size_t mods_offset = align_up(kModsUnaligned, mods_.params_align);
  const size_t bounds_offset = align_up(mods_offset + mods_.params_size, alignof(void*));
  std::vector<unsigned char> bytes(align_up(bounds_offset + sizeof(void*), 64), 0);
  std::memcpy(bytes.data(), p.get(), kModsUnaligned);
  ATTNC_ASSERT(mod_bytes.size() == mods_.params_size, "packed ModParams size");
  std::memcpy(bytes.data() + mods_offset, mod_bytes.data(), mod_bytes.size());
  std::memcpy(bytes.data() + bounds_offset, &bounds, sizeof bounds);
  return bytes;
}

void FlashSm90Kernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
                             const AttentionOptions& options, cuda::CuStream stream) const {
  const DType dtype = plan_.spec.dtype;
  const TensorMapEncoder encode = [dtype](void* map, const TensorMapRequest& r) { driver_encoder(map, r, dtype); };
  // Checks first (with no tile map yet): a bad call must not build, allocate, load or launch anything.
  std::vector<unsigned char> bytes =
      pack_arguments(q, k, v, out, lse, options, attnc_abi::TileMapView{}, nullptr, encode);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2);
  if (B == 0 || H == 0 || S == 0) return;

  std::optional<TileMap> built;  // a map built for this launch only
  attnc_abi::TileMapView map{};
  if (plan_.spec.mask) {
    const TileMapShape shape = tile_map_shape(q, k, options);
    if (options.tile_map != nullptr) {
      if (options.tile_map->device() != Device::Cuda) {
        throw RuntimeError(fmt::format("{}: the tile map lives on the {}, the launch needs one on the GPU", kLaunch,
                                       device_name(options.tile_map->device())));
      }
      options.tile_map->check_matches(kLaunch, *options.mask_mod, shape);
      map = options.tile_map->view();
    } else {
      built = tilemap::build_tile_map_cuda(*options.mask_mod, shape, kArch, stream);
      map = built->view();
    }
  }
  cuda::CuFunction kernel = function();
  const unsigned grid_x = static_cast<unsigned>((S + kBlockM - 1) / kBlockM);
  std::optional<attnc_abi::BoundsReport> report =
      cuda::launch_with_bounds_report(plan_.spec.check_bounds, stream, [&](void* bounds) {
        bytes = pack_arguments(q, k, v, out, lse, options, map, bounds, encode);
        void* params[] = {bytes.data()};
        cuda::CudaDriver::get().launch(kernel, grid_x, static_cast<unsigned>(H), static_cast<unsigned>(B), kThreads, 1,
                                       1, static_cast<unsigned>(shared_bytes_), stream, params);
      });
  // A map built here is freed on return: the kernel must be done with it.
  if (built) cuda::CudaDriver::get().synchronize(stream);
  if (report && report->failed != 0) {
    throw RuntimeError(cuda::bounds_report_message(kLaunch, mods_, *report, options.score_mod, options.mask_mod));
  }
}

std::shared_ptr<const FlashSm90Kernel> load_flash_sm90_kernel(const FlashSm90Plan& plan, KernelCache& cache,
                                                              int device) {
  ir::CudaModSource mods = flash_sm90_mods(plan.spec);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kEntry, [&] { return flash_sm90_program(plan, mods); }, flash_sm90_nvrtc_options(plan.spec));
  return std::make_shared<const FlashSm90Kernel>(plan, std::move(binary.key), binary.source, std::move(binary.kernel),
                                                 std::move(mods), device);
}

bool flash_sm90_accepts(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  for (const Tensor* t : {&q, &k, &v, &out}) {
    if (!t->defined() || t->rank() != 4 || !tma_layout_problem(*t).empty()) return false;
  }
  return supports_flash_sm90(q.dtype(), static_cast<int>(q.size(3)), static_cast<int>(v.size(3)));
}

namespace {

// The kernel for a call, kept loaded per key for the life of the process.
std::shared_ptr<const FlashSm90Kernel> kernel_for(const Tensor& q, const Tensor& v, const AttentionOptions& options) {
  FlashSm90Spec spec;
  spec.score = ModSpec::of(options.score_mod);
  spec.mask = ModSpec::of(options.mask_mod);
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(q.size(3));
  spec.head_dim_v = static_cast<int>(v.size(3));
  spec.check_bounds = options.check_bounds;
  const FlashSm90Plan plan = plan_flash_sm90_kernel(std::move(spec));
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const FlashSm90Kernel>> loaded;
  const std::string text = plan.key.serialize();
  {
    std::lock_guard guard(mutex);
    if (auto it = loaded.find(text); it != loaded.end()) return it->second;
  }
  std::shared_ptr<const FlashSm90Kernel> kernel = load_flash_sm90_kernel(plan, cuda::default_kernel_cache());
  std::lock_guard guard(mutex);
  loaded.emplace(text, kernel);
  return kernel;
}

}  // namespace

void flash_attention_sm90(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const AttentionOptions& options, Tensor* lse) {
  if (lse != nullptr && !lse->defined() && q.defined() && q.rank() >= 3) {
    *lse = cuda::empty_device_tensor(DType::F32, {q.size(0), q.size(1), q.size(2)});
  }
  check_attention_args(kLaunch, q, k, v, out, options, lse, TensorRule{Device::Cuda, q.dtype()});
  kernel_for(q, v, options)->launch(q, k, v, out, lse, options, nullptr);
  cuda::CudaDriver::get().synchronize(nullptr);
}

std::shared_ptr<const TileMap> build_flash_sm90_tile_map(const Tensor& q, const Tensor& k, const Tensor& v,
                                                         const AttentionOptions& options) {
  if (options.mask_mod == nullptr) return nullptr;
  const std::shared_ptr<const FlashSm90Kernel> kernel = kernel_for(q, v, options);
  auto map = std::make_shared<const TileMap>(
      tilemap::build_tile_map_cuda(*options.mask_mod, kernel->tile_map_shape(q, k, options), kArch, nullptr));
  cuda::CudaDriver::get().synchronize(nullptr);
  return map;
}

}  // namespace attnc::flash_sm90
