#include "runtime/families/linear/LinearCuda.h"

#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"

namespace attnc::linear {

namespace {

constexpr const char* kLaunch = "linear_attention (cuda)";

void check_layout(const Tensor& t, const char* role) {
  if (t.stride(3) != 1 && t.size(3) > 1) {
    throw RuntimeError(
        fmt::format("{}: {} must have its last (head) dimension contiguous, got {}", kLaunch, role, t.describe()));
  }
}

}  // namespace

attnc_linear::LinearParams linear_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                         const KeyMask& mask) {
  attnc_linear::LinearParams p{};
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.mask = static_cast<const uint8_t*>(mask.data);
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  p.mask_batch_stride = mask.batch_stride, p.mask_head_stride = mask.head_stride, p.mask_kv_stride = mask.kv_stride;
  p.batch = static_cast<int32_t>(q.size(0));
  p.num_heads = static_cast<int32_t>(q.size(1));
  p.num_kv_heads = static_cast<int32_t>(k.size(1));
  p.q_len = static_cast<int32_t>(q.size(2));
  p.kv_len = static_cast<int32_t>(k.size(2));
  return p;
}

LinearKernel::LinearKernel(LinearPlan plan, KernelKey key, CacheSource source,
                           std::shared_ptr<const CachedKernel> binary, int device)
    : plan_(std::move(plan)), key_(std::move(key)), source_(source), binary_(std::move(binary)), device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(fmt::format("kernel cache entry {} is a '{}' kernel, not a linear attention kernel",
                                   key_.hash_hex(), key_.family));
  }
}

LinearKernel::~LinearKernel() = default;

cuda::CuFunction LinearKernel::function() const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.use_device(device_);
  if (function_ == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    cuda::CuFunction function = module_->function(kEntry);
    if (plan_.shared_bytes > 48 * 1024) driver.set_max_dynamic_shared(function, static_cast<int>(plan_.shared_bytes));
    function_ = function;
  }
  return function_;
}

void LinearKernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const LinearAttentionOptions& options, cuda::CuStream stream) const {
  const LinearSpec& spec = plan_.spec;
  const TensorRule rule{Device::Cuda, spec.dtype};
  const AttentionShape shape = check_attention_args(kLaunch, q, k, v, out, AttentionOptions{}, nullptr, rule);
  if (shape.head_dim != spec.head_dim || shape.value_dim != spec.head_dim_v) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled for head dims {}/{} (q/k, v), got q {}, v {}", kLaunch,
                                   spec.head_dim, spec.head_dim_v, q.describe(), v.describe()));
  }
  if (options.causal != spec.causal) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {}, but the call is {}", kLaunch,
                                   spec.causal ? "causal" : "non-causal", options.causal ? "causal" : "non-causal"));
  }
  check_layout(q, "q");
  check_layout(k, "k");
  check_layout(v, "v");
  check_layout(out, "out");
  const KeyMask mask = check_key_mask(kLaunch, options.mask, shape, TensorRule{Device::Cuda, std::nullopt});
  if (mask.defined() && !dtype_is_boolean(mask.dtype)) {
    throw RuntimeError(
        fmt::format("{}: the mask must be bool or uint8 on CUDA, got {}", kLaunch, options.mask.describe()));
  }
  attnc_linear::LinearParams params = linear_params(q, k, v, out, mask);
  if (shape.batch == 0 || shape.heads == 0 || shape.q_len == 0) return;
  cuda::CuFunction kernel = function();
  void* arguments[] = {&params};
  const auto grid_x = static_cast<unsigned>((spec.head_dim_v + plan_.tile.dv_tile - 1) / plan_.tile.dv_tile);
  cuda::CudaDriver::get().launch(kernel, grid_x, static_cast<unsigned>(shape.heads), static_cast<unsigned>(shape.batch),
                                 static_cast<unsigned>(plan_.tile.threads), 1, 1,
                                 static_cast<unsigned>(plan_.shared_bytes), stream, arguments);
}

std::shared_ptr<const LinearKernel> load_linear_kernel(const LinearPlan& plan, KernelCache& cache, int device) {
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kEntry, [&] { return linear_program(plan); }, linear_nvrtc_options(plan.spec));
  return std::make_shared<const LinearKernel>(plan, std::move(binary.key), binary.source, std::move(binary.kernel),
                                              device);
}

void linear_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                           const LinearAttentionOptions& options) {
  check_attention_args(kLaunch, q, k, v, out, AttentionOptions{}, nullptr, TensorRule{Device::Cuda, q.dtype()});
  LinearSpec spec;
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(q.size(3));
  spec.head_dim_v = static_cast<int>(v.size(3));
  spec.causal = options.causal;
  spec.chunk_size = options.chunk_size;
  {
    static std::once_flag once;
    static std::string arch;
    std::call_once(once, [] { arch = cuda::CudaDriver::get().device_info(0).arch(); });
    spec.arch = arch;
  }
  const LinearPlan plan = plan_linear_kernel(std::move(spec));
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const LinearKernel>> loaded;
  const std::string text = plan.key.serialize();
  std::shared_ptr<const LinearKernel> kernel;
  {
    std::lock_guard guard(mutex);
    if (auto it = loaded.find(text); it != loaded.end()) kernel = it->second;
  }
  if (!kernel) {
    kernel = load_linear_kernel(plan, cuda::default_kernel_cache());
    std::lock_guard guard(mutex);
    loaded.emplace(text, kernel);
  }
  kernel->launch(q, k, v, out, options, nullptr);
  cuda::CudaDriver::get().synchronize(nullptr);
}

}  // namespace attnc::linear
