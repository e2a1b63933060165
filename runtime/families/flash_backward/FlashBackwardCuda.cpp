#include "runtime/families/flash_backward/FlashBackwardCuda.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/ModDerivatives.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/BoundsReport.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/LoadedKernels.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/families/flash_backward/flash_backward.cuh"

namespace attnc::flash_backward {

namespace {

constexpr const char* kLaunch = "flash_attention_backward (cuda)";

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// The kernels' argument is FlashBackwardParams<attnc_gen::ModParams>: a fixed prefix, the generated
// struct at its alignment, then the BoundsReport pointer (as the forward's FlashParams).
constexpr size_t kModsUnaligned = offsetof(attnc_flash_bwd::FlashBackwardParams<char>, mods);
static_assert(offsetof(attnc_flash_bwd::FlashBackwardParams<attnc_abi::TensorParam>, mods) ==
              align_up(kModsUnaligned, 8));
static_assert(offsetof(attnc_flash_bwd::FlashBackwardParams<attnc_abi::TensorParam>, bounds) ==
              align_up(kModsUnaligned, 8) + sizeof(attnc_abi::TensorParam));

// What the template's loads and stores need (flash_backward.cuh's requirements).
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

// A CUDA tensor of `dtype` shaped like `like`.
void check_like(const Tensor& t, const Tensor& like, DType dtype, const char* role, const char* like_role) {
  if (!t.defined() || t.device() != Device::Cuda || t.dtype() != dtype || t.shape() != like.shape()) {
    throw RuntimeError(fmt::format("{}: {} must be a {} CUDA tensor shaped like {} ({}), got {}", kLaunch, role,
                                   dtype_name(dtype), like_role, like.describe(),
                                   t.defined() ? t.describe() : std::string("an undefined tensor")));
  }
}

template <class T>
void set_strides(const Tensor& t, T& batch, T& head, T& row) {
  batch = t.stride(0), head = t.stride(1), row = t.stride(2);
}

}  // namespace

FlashBackwardKernel::FlashBackwardKernel(FlashBackwardPlan plan, KernelKey key, CacheSource source,
                                         std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods, int device)
    : plan_(std::move(plan)),
      key_(std::move(key)),
      source_(source),
      binary_(std::move(binary)),
      mods_(std::move(mods)),
      device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(fmt::format("kernel cache entry {} is a '{}' kernel, not a flash backward kernel",
                                   key_.hash_hex(), key_.family));
  }
  shared_bytes_ = flash_backward_shared_bytes(plan_.tile, plan_.spec.head_dim, plan_.spec.head_dim_v);
}

FlashBackwardKernel::~FlashBackwardKernel() = default;

FlashBackwardKernel::Functions FlashBackwardKernel::functions() const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.use_device(device_);
  if (functions_.main == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    Functions f{module_->function(kPreprocessEntry), module_->function(kEntry), module_->function(kConvertEntry)};
    // Above 48 KiB a kernel must opt into its dynamic shared memory.
    if (shared_bytes_ > 48 * 1024) driver.set_max_dynamic_shared(f.main, static_cast<int>(shared_bytes_));
    functions_ = f;
  }
  return functions_;
}

std::vector<unsigned char> FlashBackwardKernel::pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v,
                                                               const Tensor& out, const Tensor& lse, const Tensor& dout,
                                                               const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                                               const AttentionOptions& options, const Dropout& dropout,
                                                               const std::vector<Tensor>& dparams, void* delta,
                                                               void* dq_accum, void* bounds) const {
  const FlashBackwardSpec& spec = plan_.spec;
  if (!lse.defined()) throw RuntimeError(fmt::format("{}: lse must be given", kLaunch));
  Tensor lse_view = lse;
  const AttentionShape shape =
      check_attention_args(kLaunch, q, k, v, out, options, &lse_view, TensorRule{Device::Cuda, spec.dtype});
  if (shape.head_dim != spec.head_dim || shape.value_dim != spec.head_dim_v) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled for head dims {}/{} (q/k, v), got q {}, k {}, v {}",
                                   kLaunch, spec.head_dim, spec.head_dim_v, q.describe(), k.describe(), v.describe()));
  }
  if (options.check_bounds != spec.check_bounds) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} bounds checking, but the launch asks {} it", kLaunch,
                                   spec.check_bounds ? "with" : "without", options.check_bounds ? "for" : "not for"));
  }
  check_like(dout, out, spec.dtype, "dout", "out");
  check_like(dq, q, spec.dtype, "dq", "q");
  check_like(dk, k, spec.dtype, "dk", "k");
  check_like(dv, v, spec.dtype, "dv", "v");
  for (auto [t, role] : {std::pair{&q, "q"},
                         {&k, "k"},
                         {&v, "v"},
                         {&out, "out"},
                         {&dout, "dout"},
                         {&dq, "dq"},
                         {&dk, "dk"},
                         {&dv, "dv"}}) {
    check_layout(*t, role);
  }
  const std::vector<unsigned char> mod_bytes =
      cuda::pack_launch_mods(kLaunch, mods_, options.score_mod, spec.score, options.mask_mod, spec.mask);

  attnc_flash_bwd::FlashBackwardParams<char> p{};
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = out.data(), p.dout = dout.data();
  p.lse = static_cast<const float*>(lse.data());
  p.delta = static_cast<float*>(delta);
  p.dq_accum = static_cast<float*>(dq_accum);
  p.dq = dq.data(), p.dk = dk.data(), p.dv = dv.data();
  set_strides(q, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  set_strides(k, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  set_strides(v, p.v_batch_stride, p.v_head_stride, p.v_row_stride);
  set_strides(out, p.out_batch_stride, p.out_head_stride, p.out_row_stride);
  set_strides(dout, p.dout_batch_stride, p.dout_head_stride, p.dout_row_stride);
  set_strides(dq, p.dq_batch_stride, p.dq_head_stride, p.dq_row_stride);
  set_strides(dk, p.dk_batch_stride, p.dk_head_stride, p.dk_row_stride);
  set_strides(dv, p.dv_batch_stride, p.dv_head_stride, p.dv_row_stride);
  set_strides(lse, p.lse_batch_stride, p.lse_head_stride, p.lse_row_stride);
  p.batch = static_cast<int32_t>(shape.batch);
  p.num_heads = static_cast<int32_t>(shape.heads);
  p.num_kv_heads = static_cast<int32_t>(shape.kv_heads);
  p.q_len = static_cast<int32_t>(shape.q_len);
  p.kv_len = static_cast<int32_t>(shape.kv_len);
  p.q_offset = options.q_offset;
  p.scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.head_dim)));
  check_dropout(kLaunch, dropout);
  // One zeroed fp32 CUDA tensor per float tensor parameter of the score mod, shaped like its argument.
  std::vector<uint32_t> float_params;
  if (spec.score) {
    for (uint32_t param = 0; param < spec.score.def->params.size(); ++param) {
      const ir::ParamDecl& decl = spec.score.def->params[param];
      if (decl.is_tensor() && decl.elem == ir::Type::Float) float_params.push_back(param);
    }
  }
  if (float_params.size() > static_cast<size_t>(attnc_flash_bwd::kMaxParamGradients) ||
      dparams.size() != float_params.size()) {
    throw RuntimeError(
        fmt::format("{}: the score mod has {} float tensor parameters (at most {}); got {} gradient tensors", kLaunch,
                    float_params.size(), attnc_flash_bwd::kMaxParamGradients, dparams.size()));
  }
  for (size_t slot = 0; slot < dparams.size(); ++slot) {
    const Tensor& t = dparams[slot];
    const auto& bound = options.score_mod != nullptr ? options.score_mod->argument(float_params[slot]) : std::nullopt;
    if (!t.defined() || t.device() != Device::Cuda || t.dtype() != DType::F32 || !t.is_contiguous() || !bound ||
        !std::holds_alternative<Tensor>(*bound) || std::get<Tensor>(*bound).shape() != t.shape()) {
      throw RuntimeError(
          fmt::format("{}: the gradient of parameter '{}' must be a contiguous fp32 CUDA tensor shaped "
                      "like its argument, got {}",
                      kLaunch, spec.score.def->params[float_params[slot]].name,
                      t.defined() ? t.describe() : std::string("an undefined tensor")));
    }
    p.dparams[slot] = static_cast<float*>(t.data());
  }
  if (dropout.enabled()) {
    p.dropout_threshold = dropout_threshold(dropout.rate);
    p.dropout_keep_scale = dropout.keep_scale();
    p.dropout_seed = dropout.seed;
  }

  const size_t mods_offset = align_up(kModsUnaligned, mods_.params_align);
  const size_t bounds_offset = align_up(mods_offset + mods_.params_size, alignof(void*));
  std::vector<unsigned char> bytes(bounds_offset + sizeof(void*), 0);
  std::memcpy(bytes.data(), &p, kModsUnaligned);
  ATTNC_ASSERT(mod_bytes.size() == mods_.params_size, "packed ModParams size");
  std::memcpy(bytes.data() + mods_offset, mod_bytes.data(), mod_bytes.size());
  std::memcpy(bytes.data() + bounds_offset, &bounds, sizeof bounds);
  return bytes;
}

void FlashBackwardKernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                 const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                                 const Tensor& dv, const AttentionOptions& options, const Dropout& dropout,
                                 const std::vector<Tensor>& dparams, cuda::CuStream stream) const {
  // Checks first: a bad call must not allocate, load or launch anything.
  std::vector<unsigned char> bytes =
      pack_arguments(q, k, v, out, lse, dout, dq, dk, dv, options, dropout, dparams, nullptr, nullptr, nullptr);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), Hkv = k.size(1), Skv = k.size(2);
  if (B == 0 || H == 0 || Hkv == 0 || (S == 0 && Skv == 0)) return;
  const Functions f = functions();
  // Scratch: delta per query row, the fp32 dQ accumulator (at least one element each, so that a
  // zero-length side still has valid pointers).
  const Tensor delta = cuda::empty_device_tensor(DType::F32, {std::max<int64_t>(1, B * H * S)});
  const Tensor dq_accum = cuda::empty_device_tensor(DType::F32, {std::max<int64_t>(1, B * H * S * q.size(3))});
  const unsigned row_blocks =
      static_cast<unsigned>((S + attnc_flash_bwd::kRowKernelRows - 1) / attnc_flash_bwd::kRowKernelRows);
  const unsigned key_blocks = static_cast<unsigned>((Skv + plan_.tile.block_n - 1) / plan_.tile.block_n);
  std::optional<attnc_abi::BoundsReport> report =
      cuda::launch_with_bounds_report(plan_.spec.check_bounds, stream, [&](void* bounds) {
        bytes = pack_arguments(q, k, v, out, lse, dout, dq, dk, dv, options, dropout, dparams, delta.data(),
                               dq_accum.data(), bounds);
        void* params[] = {bytes.data()};
        cuda::CudaDriver& driver = cuda::CudaDriver::get();
        if (S > 0) {
          driver.launch(f.preprocess, row_blocks, static_cast<unsigned>(H), static_cast<unsigned>(B),
                        attnc_flash_bwd::kRowKernelThreads, 1, 1, 0, stream, params);
        }
        if (Skv > 0) {
          driver.launch(f.main, key_blocks, static_cast<unsigned>(Hkv), static_cast<unsigned>(B), threads(), 1, 1,
                        static_cast<unsigned>(shared_bytes_), stream, params);
        }
        if (S > 0) {
          driver.launch(f.convert, row_blocks, static_cast<unsigned>(H), static_cast<unsigned>(B),
                        attnc_flash_bwd::kRowKernelThreads, 1, 1, 0, stream, params);
        }
      });
  cuda::CudaDriver::get().synchronize(stream);  // the scratch is freed on return
  if (report && report->failed != 0) {
    throw RuntimeError(cuda::bounds_report_message(kLaunch, mods_, *report, options.score_mod, options.mask_mod));
  }
}

std::shared_ptr<const FlashBackwardKernel> load_flash_backward_kernel(const FlashBackwardPlan& plan, KernelCache& cache,
                                                                      int device) {
  ir::CudaModSource mods = flash_backward_mods(plan.spec);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kEntry, [&] { return flash_backward_program(plan, mods); },
      flash_backward_nvrtc_options(plan.spec));
  return std::make_shared<const FlashBackwardKernel>(plan, std::move(binary.key), binary.source,
                                                     std::move(binary.kernel), std::move(mods), device);
}

void flash_attention_backward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                   const Tensor& lse, const Tensor& dout, AttentionGradients& grads,
                                   const AttentionOptions& options, const Dropout& dropout) {
  check_attention_inputs(kLaunch, q, v, TensorRule{Device::Cuda, q.dtype()});
  if (!grads.dq.defined()) grads.dq = cuda::empty_device_tensor(q.dtype(), q.shape());
  if (!grads.dk.defined()) grads.dk = cuda::empty_device_tensor(q.dtype(), k.shape());
  if (!grads.dv.defined()) grads.dv = cuda::empty_device_tensor(q.dtype(), v.shape());
  grads.dparams.clear();
  std::vector<Tensor> dparams;
  if (options.score_mod != nullptr) {
    // derive_score_mod checks the extents the float indices need; the gradients start at 0.
    for (uint32_t param : derive_score_mod(kLaunch, *options.score_mod).float_tensors) {
      const Tensor& bound = std::get<Tensor>(*options.score_mod->argument(param));
      Tensor gradient = cuda::empty_device_tensor(DType::F32, bound.shape());
      cuda::CudaDriver::get().memset(reinterpret_cast<cuda::CuDevicePtr>(gradient.data()), 0,
                                     static_cast<size_t>(gradient.numel()) * sizeof(float));
      dparams.push_back(gradient);
      grads.dparams.emplace(options.score_mod->def().params[param].name, std::move(gradient));
    }
  }

  FlashBackwardSpec spec;
  spec.score = ModSpec::of(options.score_mod);
  spec.mask = ModSpec::of(options.mask_mod);
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(q.size(3));
  spec.head_dim_v = static_cast<int>(v.size(3));
  spec.check_bounds = options.check_bounds;
  spec.arch = cuda::device0_arch();
  const FlashBackwardPlan plan = plan_flash_backward_kernel(std::move(spec));

  const std::shared_ptr<const FlashBackwardKernel> kernel = cuda::loaded_kernel<FlashBackwardKernel>(
      plan.key.serialize(), [&] { return load_flash_backward_kernel(plan, cuda::default_kernel_cache()); });
  kernel->launch(q, k, v, out, lse, dout, grads.dq, grads.dk, grads.dv, options, dropout, dparams, nullptr);
}

}  // namespace attnc::flash_backward
