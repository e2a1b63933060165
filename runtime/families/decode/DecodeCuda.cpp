#include "runtime/families/decode/DecodeCuda.h"

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
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/BoundsReport.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/families/decode/decode_attention.cuh"

namespace attnc::decode {

namespace {

constexpr const char* kLaunch = "decode_attention (cuda)";

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// The kernel argument is DecodeParams<attnc_gen::ModParams>: a fixed prefix, the generated struct at
// its alignment, then the BoundsReport pointer (as in the flash family).
constexpr size_t kModsUnaligned = offsetof(attnc_decode::DecodeParams<char>, mods);
static_assert(offsetof(attnc_decode::DecodeParams<attnc_abi::TensorParam>, mods) == align_up(kModsUnaligned, 8));
static_assert(offsetof(attnc_decode::DecodeParams<attnc_abi::TensorParam>, bounds) ==
              align_up(kModsUnaligned, 8) + sizeof(attnc_abi::TensorParam));
// The rows go to the device as they are on the host.
static_assert(sizeof(KvBatchRow) == sizeof(attnc_decode::DecodeRow) &&
              offsetof(KvBatchRow, kv_row) == offsetof(attnc_decode::DecodeRow, kv_row) &&
              offsetof(KvBatchRow, kv_len) == offsetof(attnc_decode::DecodeRow, kv_len) &&
              offsetof(KvBatchRow, q_offset) == offsetof(attnc_decode::DecodeRow, q_offset));

// 16-byte aligned data (cp.async moves 16 bytes), head dim contiguous, other strides multiples of 8.
void check_layout(const Tensor& t, const char* role) {
  if (reinterpret_cast<uintptr_t>(t.data()) % 16 != 0) {
    throw RuntimeError(fmt::format("{}: {} must be 16-byte aligned, its data is at {}", kLaunch, role, t.data()));
  }
  if (t.stride(3) != 1 && t.size(3) > 1) {
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

DecodeKernel::DecodeKernel(DecodePlan plan, KernelKey key, CacheSource source,
                           std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods, int device)
    : plan_(std::move(plan)),
      key_(std::move(key)),
      source_(source),
      binary_(std::move(binary)),
      mods_(std::move(mods)),
      device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(
        fmt::format("kernel cache entry {} is a '{}' kernel, not a decode kernel", key_.hash_hex(), key_.family));
  }
  shared_bytes_ = decode_shared_bytes(plan_.tile, plan_.spec.head_dim, plan_.spec.head_dim_v);
}

DecodeKernel::~DecodeKernel() = default;

size_t DecodeKernel::workspace_bytes(int64_t batch, int64_t heads, int64_t q_len, int num_splits, int head_dim_v) {
  if (num_splits <= 1) return 0;
  const size_t partial_rows = static_cast<size_t>(batch * heads * q_len * num_splits);
  return partial_rows * static_cast<size_t>(head_dim_v) * sizeof(float) + partial_rows * sizeof(float);
}

int DecodeKernel::splits_for(int64_t batch, int64_t kv_heads, int64_t rows, int64_t max_kv_len, int sm_count) const {
  const int64_t units = batch * kv_heads * decode_row_chunks(static_cast<int>(std::min<int64_t>(rows, 1 << 20)), plan_.tile);
  const int ctas = std::max(
      1, decode_ctas_per_sm(plan_.tile, plan_.spec.head_dim, plan_.spec.head_dim_v, cuda::sm_number(plan_.spec.arch)));
  return choose_num_splits(units, max_kv_len, int64_t{sm_count} * ctas, kCudaMinKeysPerSplit, kMaxSplits);
}

DecodeKernel::Functions DecodeKernel::functions() const {
  std::lock_guard guard(load_mutex_);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.use_device(device_);
  if (functions_.split == nullptr) {
    module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    Functions f;
    f.split = module_->function(kSplitEntry);
    f.merge = module_->function(kMergeEntry);
    if (shared_bytes_ > 48 * 1024) driver.set_max_dynamic_shared(f.split, static_cast<int>(shared_bytes_));
    sm_count_ = driver.device_info(device_).multiprocessors;
    functions_ = f;
  }
  return functions_;
}

std::vector<unsigned char> DecodeKernel::pack_arguments(const Tensor& q, const KvSource& kv,
                                                        std::span<const KvBatchRow> rows, const Tensor& out,
                                                        const Tensor* lse, const AttentionOptions& options,
                                                        const DecodeLaunch& how, int num_splits, void* bounds) const {
  const DecodeSpec& spec = plan_.spec;
  Tensor lse_view = lse != nullptr ? *lse : Tensor();
  const AttentionShape shape = check_kv_source_args(kLaunch, q, kv, rows, out, options,
                                                    lse != nullptr ? &lse_view : nullptr,
                                                    TensorRule{Device::Cuda, spec.dtype});
  if (shape.head_dim != spec.head_dim || shape.value_dim != spec.head_dim_v) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled for head dims {}/{} (q/k, v), got q {}, k {}, v {}",
                                   kLaunch, spec.head_dim, spec.head_dim_v, q.describe(), kv.k.describe(),
                                   kv.v.describe()));
  }
  if (options.check_bounds != spec.check_bounds) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} bounds checking, but the launch asks {} it", kLaunch,
                                   spec.check_bounds ? "with" : "without", options.check_bounds ? "for" : "not for"));
  }
  check_layout(q, "q");
  check_layout(kv.k, "k");
  check_layout(kv.v, "v");
  check_layout(out, "out");
  if (num_splits < 1) throw RuntimeError(fmt::format("{}: num_splits must be >= 1, got {}", kLaunch, num_splits));
  const size_t workspace = workspace_bytes(shape.batch, shape.heads, shape.q_len, num_splits, spec.head_dim_v);
  if (workspace > 0 && (how.workspace == nullptr || how.workspace_size < workspace ||
                        reinterpret_cast<uintptr_t>(how.workspace) % 16 != 0)) {
    throw RuntimeError(fmt::format("{}: {} splits need a 16-byte aligned workspace of {} bytes, got {} bytes at {}",
                                   kLaunch, num_splits, workspace, how.workspace_size, how.workspace));
  }
  if (how.device_rows == nullptr) {
    for (size_t b = 0; b < rows.size(); ++b) {
      if (rows[b].kv_row != static_cast<int32_t>(b) || rows[b].kv_len != rows[0].kv_len ||
          rows[b].q_offset != rows[0].q_offset) {
        throw RuntimeError(fmt::format(
            "{}: rows that differ per batch row (batch row {} reads KV row {} with {} keys at position {}) must be "
            "given in device memory",
            kLaunch, b, rows[b].kv_row, rows[b].kv_len, rows[b].q_offset));
      }
    }
  }
  const std::vector<unsigned char> mod_bytes =
      cuda::pack_launch_mods(kLaunch, mods_, options.score_mod, spec.score, options.mask_mod, spec.mask);

  attnc_decode::DecodeParams<char> p{};
  p.q = q.data();
  p.out = out.data();
  p.lse = lse != nullptr ? static_cast<float*>(lse->data()) : nullptr;
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  if (lse != nullptr) {
    p.lse_batch_stride = lse->stride(0), p.lse_head_stride = lse->stride(1), p.lse_row_stride = lse->stride(2);
  }
  p.k = kv.k.data();
  p.v = kv.v.data();
  p.k_page_stride = kv.k.stride(0), p.k_head_stride = kv.k.stride(1), p.k_row_stride = kv.k.stride(2);
  p.v_page_stride = kv.v.stride(0), p.v_head_stride = kv.v.stride(1), p.v_row_stride = kv.v.stride(2);
  if (kv.paged()) {
    p.block_table = static_cast<const int32_t*>(kv.block_table.data());
    p.block_table_stride = kv.block_table.stride(0);
    while ((1 << p.page_shift) < kv.page_size) ++p.page_shift;
  }
  p.rows = static_cast<const attnc_decode::DecodeRow*>(how.device_rows);
  p.batch = as_int32(shape.batch);
  p.num_heads = as_int32(shape.heads);
  p.num_kv_heads = as_int32(shape.kv_heads);
  p.q_len = as_int32(shape.q_len);
  if (!rows.empty()) {
    p.kv_len = rows[0].kv_len;
    p.q_offset = rows[0].q_offset;
  }
  p.num_splits = num_splits;
  const int64_t rows_per_kv_head = shape.kv_heads > 0 ? shape.heads / shape.kv_heads * shape.q_len : 0;
  p.row_chunks = static_cast<int32_t>((rows_per_kv_head + plan_.tile.rows() - 1) / plan_.tile.rows());
  p.scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.head_dim)));
  if (workspace > 0) {
    const size_t partial_rows = static_cast<size_t>(shape.batch * shape.heads * shape.q_len * num_splits);
    p.partial_out = static_cast<float*>(how.workspace);
    p.partial_lse = p.partial_out + partial_rows * static_cast<size_t>(spec.head_dim_v);
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

void DecodeKernel::launch(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
                          const Tensor* lse, const AttentionOptions& options, const DecodeLaunch& how,
                          cuda::CuStream stream) const {
  // Checks first (with one split, which needs no workspace): a bad call touches no device state.
  std::vector<unsigned char> bytes = pack_arguments(q, kv, rows, out, lse, options, how, 1, nullptr);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), Hkv = kv.k.size(1);
  if (B == 0 || H == 0 || S == 0) return;
  const Functions f = functions();
  int64_t max_len = 0;
  for (const KvBatchRow& row : rows) max_len = std::max<int64_t>(max_len, row.kv_len);
  const int splits = how.num_splits > 0 ? how.num_splits : splits_for(B, Hkv, H / Hkv * S, max_len, sm_count_);
  const int chunks = decode_row_chunks(static_cast<int>(H / Hkv * S), plan_.tile);
  std::optional<attnc_abi::BoundsReport> report =
      cuda::launch_with_bounds_report(plan_.spec.check_bounds, stream, [&](void* bounds) {
        bytes = pack_arguments(q, kv, rows, out, lse, options, how, splits, bounds);
        void* params[] = {bytes.data()};
        cuda::CudaDriver& driver = cuda::CudaDriver::get();
        driver.launch(f.split, static_cast<unsigned>(splits), static_cast<unsigned>(Hkv * chunks),
                      static_cast<unsigned>(B), static_cast<unsigned>(plan_.tile.threads()), 1, 1,
                      static_cast<unsigned>(shared_bytes_), stream, params);
        if (splits > 1) {
          const int64_t out_rows = B * H * S;
          const auto merge_ctas = static_cast<unsigned>((out_rows + 3) / 4);
          driver.launch(f.merge, merge_ctas, 1, 1, 128, 1, 1, 0, stream, params);
        }
      });
  if (report && report->failed != 0) {
    throw RuntimeError(cuda::bounds_report_message(kLaunch, mods_, *report, options.score_mod, options.mask_mod));
  }
}

std::shared_ptr<const DecodeKernel> load_decode_kernel(const DecodePlan& plan, KernelCache& cache, int device) {
  ir::CudaModSource mods = decode_mods(plan.spec);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kSplitEntry, [&] { return decode_program(plan, mods); }, decode_nvrtc_options(plan.spec));
  return std::make_shared<const DecodeKernel>(plan, std::move(binary.key), binary.source, std::move(binary.kernel),
                                              std::move(mods), device);
}

namespace {

// Device 0's architecture and SM count, asked once per process.
const cuda::CudaDeviceInfo& device_info() {
  static std::once_flag once;
  static cuda::CudaDeviceInfo info;
  std::call_once(once, [] { info = cuda::CudaDriver::get().device_info(0); });
  return info;
}

std::string device_arch() { return device_info().arch(); }

// A grow-only device buffer shared by the calls of decode_attention_cuda (which hold its mutex from
// the upload to the end of the kernel).
struct DeviceScratch {
  std::mutex mutex;
  Tensor buffer;
  void* reserve(size_t bytes) {
    if (!buffer.defined() || static_cast<size_t>(buffer.numel()) < bytes) {
      buffer = cuda::empty_device_tensor(DType::U8, {static_cast<int64_t>(std::max<size_t>(bytes, 4096))});
    }
    return buffer.data();
  }
};

DeviceScratch& scratch() {
  static DeviceScratch instance;
  return instance;
}

}  // namespace

bool decode_cuda_supports(DType dtype, int64_t head_dim, int64_t head_dim_v) {
  if (dtype != DType::BF16 && dtype != DType::F16) return false;
  if (head_dim > 256 || head_dim_v > 256) return false;
  return decode_supported(static_cast<int>(head_dim), static_cast<int>(head_dim_v), cuda::sm_number(device_arch()));
}

void decode_attention_cuda(const Tensor& q, const KvSource& kv, std::span<const KvBatchRow> rows, const Tensor& out,
                           const AttentionOptions& options, Tensor* lse) {
  if (lse != nullptr && !lse->defined() && q.defined() && q.rank() >= 3) {
    *lse = cuda::empty_device_tensor(DType::F32, {q.size(0), q.size(1), q.size(2)});
  }
  const AttentionShape shape =
      check_kv_source_args(kLaunch, q, kv, rows, out, options, lse, TensorRule{Device::Cuda, q.dtype()});
  DecodeSpec spec;
  spec.score = ModSpec::of(options.score_mod);
  spec.mask = ModSpec::of(options.mask_mod);
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(shape.head_dim);
  spec.head_dim_v = static_cast<int>(shape.value_dim);
  spec.rows = static_cast<int>(std::min<int64_t>(shape.kv_heads > 0 ? shape.heads / shape.kv_heads * shape.q_len : 1,
                                                 1 << 20));
  spec.check_bounds = options.check_bounds;
  spec.arch = device_arch();
  const DecodePlan plan = plan_decode_kernel(std::move(spec));

  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const DecodeKernel>> loaded;
  const std::string text = plan.key.serialize();
  std::shared_ptr<const DecodeKernel> kernel;
  {
    std::lock_guard guard(mutex);
    if (auto it = loaded.find(text); it != loaded.end()) kernel = it->second;
  }
  if (!kernel) {
    kernel = load_decode_kernel(plan, cuda::default_kernel_cache());
    std::lock_guard guard(mutex);
    loaded.emplace(text, kernel);
  }
  if (shape.batch == 0 || shape.heads == 0 || shape.q_len == 0) return;

  const int sms = device_info().multiprocessors;
  DecodeLaunch how;
  how.num_splits = kernel->splits_for(shape.batch, shape.kv_heads, shape.heads / shape.kv_heads * shape.q_len,
                                      shape.kv_len, sms);
  bool uniform = true;
  for (size_t b = 0; b < rows.size(); ++b) {
    uniform = uniform && rows[b].kv_row == static_cast<int32_t>(b) && rows[b].kv_len == rows[0].kv_len &&
              rows[b].q_offset == rows[0].q_offset;
  }
  const size_t workspace = DecodeKernel::workspace_bytes(shape.batch, shape.heads, shape.q_len, how.num_splits,
                                                         static_cast<int>(shape.value_dim));
  const size_t rows_bytes = uniform ? 0 : align_up(rows.size() * sizeof(KvBatchRow), 16);
  DeviceScratch& buffer = scratch();
  std::lock_guard guard(buffer.mutex);
  unsigned char* base = static_cast<unsigned char*>(buffer.reserve(workspace + rows_bytes));
  if (!uniform) {
    cuda::CudaDriver::get().copy_to_device(reinterpret_cast<cuda::CuDevicePtr>(base), rows.data(),
                                           rows.size() * sizeof(KvBatchRow));
    how.device_rows = base;
  }
  how.workspace = base + rows_bytes;
  how.workspace_size = workspace;
  kernel->launch(q, kv, rows, out, lse, options, how, nullptr);
  cuda::CudaDriver::get().synchronize(nullptr);
}

void decode_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                           const AttentionOptions& options, Tensor* lse) {
  if (lse != nullptr && !lse->defined() && q.defined() && q.rank() >= 3) {
    *lse = cuda::empty_device_tensor(DType::F32, {q.size(0), q.size(1), q.size(2)});
  }
  const AttentionShape shape =
      check_attention_args(kLaunch, q, k, v, out, options, lse, TensorRule{Device::Cuda, q.dtype()});
  std::vector<KvBatchRow> rows(static_cast<size_t>(shape.batch));
  for (int64_t b = 0; b < shape.batch; ++b) {
    rows[static_cast<size_t>(b)] = {static_cast<int32_t>(b), static_cast<int32_t>(shape.kv_len), options.q_offset};
  }
  KvSource kv;
  kv.k = k;
  kv.v = v;
  decode_attention_cuda(q, kv, rows, out, options, lse);
}

}  // namespace attnc::decode
