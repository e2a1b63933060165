#include "runtime/families/flash/FlashCuda.h"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/BoundsReport.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/LoadedKernels.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/families/flash/flash_attention.cuh"

namespace attnc::flash {

namespace {

constexpr const char* kLaunch = "flash_attention (cuda)";

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// The kernel's argument is FlashParams<attnc_gen::ModParams>: a fixed prefix, the generated struct
// at its alignment, then the BoundsReport pointer. The prefix is the same for every ModParams, so
// the host builds it from FlashParams<char> and places the packed ModParams bytes after it.
constexpr size_t kModsUnaligned = offsetof(attnc_flash::FlashParams<char>, mods);
static_assert(offsetof(attnc_flash::FlashParams<attnc_abi::TensorParam>, mods) == align_up(kModsUnaligned, 8));
static_assert(offsetof(attnc_flash::FlashParams<attnc_abi::TensorParam>, bounds) ==
              align_up(kModsUnaligned, 8) + sizeof(attnc_abi::TensorParam));
static_assert(sizeof(attnc_abi::BoundsReport) == 48, "BoundsReport layout (mod_abi.cuh)");

// What the template's loads need: 16-byte aligned rows (cp.async moves 16 bytes), head dim
// contiguous, every other stride a multiple of 8 elements (16 bytes).
void check_layout(const Tensor& t, const char* role) {
  if (reinterpret_cast<uintptr_t>(t.data()) % 16 != 0) {
    throw RuntimeError(fmt::format("{}: {} must be 16-byte aligned, its data is at {}", kLaunch, role, t.data()));
  }
  if (t.stride(3) != 1) {
    throw RuntimeError(
        fmt::format("{}: {} must have its last (head) dimension contiguous, got {}", kLaunch, role, t.describe()));
  }
  for (size_t d = 0; d < 3; ++d) {
    if (t.stride(d) % 8 != 0 && t.size(d) > 1) {
      throw RuntimeError(fmt::format("{}: the strides of {} must be multiples of 8 elements (16 bytes), got {}",
                                     kLaunch, role, t.describe()));
    }
  }
}

int32_t as_int32(int64_t value) { return static_cast<int32_t>(value); }

}  // namespace

FlashKernel::FlashKernel(FlashPlan plan, KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
                         ir::CudaModSource mods, int device)
    : plan_(std::move(plan)),
      key_(std::move(key)),
      source_(source),
      binary_(std::move(binary)),
      mods_(std::move(mods)),
      device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(
        fmt::format("kernel cache entry {} is a '{}' kernel, not a flash kernel", key_.hash_hex(), key_.family));
  }
  shared_bytes_ = flash_shared_bytes(plan_.tile, plan_.spec.head_dim, plan_.spec.head_dim_v);
}

FlashKernel::~FlashKernel() = default;

cuda::CuFunction FlashKernel::function() const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.use_device(device_);
  if (function_ == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    cuda::CuFunction function = module_->function(kEntry);
    // Above 48 KiB a kernel must opt into its dynamic shared memory.
    if (shared_bytes_ > 48 * 1024) driver.set_max_dynamic_shared(function, static_cast<int>(shared_bytes_));
    function_ = function;
  }
  return function_;
}

std::vector<unsigned char> FlashKernel::pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v,
                                                       const Tensor& out, const Tensor* lse,
                                                       const AttentionOptions& options, void* bounds,
                                                       const Dropout& dropout) const {
  const FlashSpec& spec = plan_.spec;
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
  check_dropout(kLaunch, dropout);
  if (dropout.enabled() != spec.dropout) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} dropout, but the launch asks {} it", kLaunch,
                                   spec.dropout ? "with" : "without", dropout.enabled() ? "for" : "not for"));
  }
  check_layout(q, "q");
  check_layout(k, "k");
  check_layout(v, "v");
  check_layout(out, "out");
  const std::vector<unsigned char> mod_bytes =
      cuda::pack_launch_mods(kLaunch, mods_, options.score_mod, spec.score, options.mask_mod, spec.mask);

  attnc_flash::FlashParams<char> p{};
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.lse = lse != nullptr ? static_cast<float*>(lse->data()) : nullptr;
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  if (lse != nullptr) {
    p.lse_batch_stride = lse->stride(0), p.lse_head_stride = lse->stride(1), p.lse_row_stride = lse->stride(2);
  }
  p.batch = as_int32(shape.batch);
  p.num_heads = as_int32(shape.heads);
  p.num_kv_heads = as_int32(shape.kv_heads);
  p.q_len = as_int32(shape.q_len);
  p.kv_len = as_int32(shape.kv_len);
  p.q_offset = options.q_offset;
  p.scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.head_dim)));
  p.dropout_seed = dropout.seed;
  p.dropout_threshold = dropout_threshold(dropout.rate);
  p.dropout_keep_scale = dropout.keep_scale();

  const size_t mods_offset = align_up(kModsUnaligned, mods_.params_align);
  const size_t bounds_offset = align_up(mods_offset + mods_.params_size, alignof(void*));
  std::vector<unsigned char> bytes(bounds_offset + sizeof(void*), 0);
  std::memcpy(bytes.data(), &p, kModsUnaligned);
  ATTNC_ASSERT(mod_bytes.size() == mods_.params_size, "packed ModParams size");
  std::memcpy(bytes.data() + mods_offset, mod_bytes.data(), mod_bytes.size());
  std::memcpy(bytes.data() + bounds_offset, &bounds, sizeof bounds);
  return bytes;
}

void FlashKernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
                         const AttentionOptions& options, cuda::CuStream stream) const {
  launch(q, k, v, out, lse, options, Dropout{}, stream);
}

void FlashKernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
                         const AttentionOptions& options, const Dropout& dropout, cuda::CuStream stream) const {
  // Checks first: a bad call must not allocate, load or launch anything.
  std::vector<unsigned char> bytes = pack_arguments(q, k, v, out, lse, options, nullptr, dropout);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2);
  if (B == 0 || H == 0 || S == 0) return;
  cuda::CuFunction kernel = function();
  const unsigned grid_x = static_cast<unsigned>((S + plan_.tile.block_m - 1) / plan_.tile.block_m);
  std::optional<attnc_abi::BoundsReport> report =
      cuda::launch_with_bounds_report(plan_.spec.check_bounds, stream, [&](void* bounds) {
        if (bounds != nullptr) bytes = pack_arguments(q, k, v, out, lse, options, bounds, dropout);
        void* params[] = {bytes.data()};
        cuda::CudaDriver::get().launch(kernel, grid_x, static_cast<unsigned>(H), static_cast<unsigned>(B), threads(), 1,
                                       1, static_cast<unsigned>(shared_bytes_), stream, params);
      });
  if (report && report->failed != 0) {
    throw RuntimeError(cuda::bounds_report_message(kLaunch, mods_, *report, options.score_mod, options.mask_mod));
  }
}

std::shared_ptr<const FlashKernel> load_flash_kernel(const FlashPlan& plan, KernelCache& cache, int device) {
  ir::CudaModSource mods = flash_mods(plan.spec);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kEntry, [&] { return flash_program(plan, mods); }, flash_nvrtc_options(plan.spec));
  return std::make_shared<const FlashKernel>(plan, std::move(binary.key), binary.source, std::move(binary.kernel),
                                             std::move(mods), device);
}

void flash_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const AttentionOptions& options, Tensor* lse, const Dropout& dropout) {
  // An undefined LSE is allocated on the device, freed with the last copy of the tensor.
  if (lse != nullptr && !lse->defined() && q.defined() && q.rank() >= 3) {
    *lse = cuda::empty_device_tensor(DType::F32, {q.size(0), q.size(1), q.size(2)});
  }
  check_attention_args(kLaunch, q, k, v, out, options, lse, TensorRule{Device::Cuda, q.dtype()});

  FlashSpec spec;
  spec.score = ModSpec::of(options.score_mod);
  spec.mask = ModSpec::of(options.mask_mod);
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(q.size(3));
  spec.head_dim_v = static_cast<int>(v.size(3));
  spec.check_bounds = options.check_bounds;
  spec.dropout = dropout.enabled();
  spec.arch = cuda::device0_arch();
  const FlashPlan plan = plan_flash_kernel(std::move(spec));

  const std::shared_ptr<const FlashKernel> kernel = cuda::loaded_kernel<FlashKernel>(
      plan.key.serialize(), [&] { return load_flash_kernel(plan, cuda::default_kernel_cache()); });
  kernel->launch(q, k, v, out, lse, options, dropout, nullptr);
  cuda::CudaDriver::get().synchronize(nullptr);
}

}  // namespace attnc::flash
