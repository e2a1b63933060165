#include "runtime/cuda/CudaAttention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "dsl/Errors.h"
#include "runtime/AttentionChecks.h"
#include "runtime/RuntimeError.h"
#include "runtime/cache/CudaKernelKey.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/kernels/flash_attention.cuh"

namespace attnc::cuda {

namespace {

constexpr size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) / alignment * alignment; }

// The kernel's argument is FlashParams<attnc_gen::ModParams>: a fixed prefix, the generated struct
// at its alignment, then the BoundsReport pointer. The prefix is the same for every ModParams, so
// the host builds it from FlashParams<char> and places the packed ModParams bytes after it.
constexpr size_t kModsUnaligned = offsetof(attnc_flash::FlashParams<char>, mods);
static_assert(offsetof(attnc_flash::FlashParams<attnc_abi::TensorParam>, mods) == align_up(kModsUnaligned, 8));
static_assert(offsetof(attnc_flash::FlashParams<attnc_abi::TensorParam>, bounds) ==
              align_up(kModsUnaligned, 8) + sizeof(attnc_abi::TensorParam));
static_assert(sizeof(attnc_abi::BoundsReport) == 48, "BoundsReport layout (mod_abi.cuh)");

// ---- Finding a kernel without NVRTC ----

// The full keys found for "any"-version keys, per cache, so a process looks each one up once.
struct KernelIndex {
  std::mutex mutex;
  std::map<std::pair<const KernelCache*, std::string>, KernelKey> full_keys;
};

KernelIndex& kernel_index() {
  static KernelIndex index;
  return index;
}

uint64_t read_le64(const unsigned char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// The key text of a cache entry file, read from its header without the payload (see
// runtime/cache/CacheEntry.h for the layout); nullopt for anything that is not a plausible entry.
// The entry is verified in full when the cache loads it, so this only has to find candidates.
std::optional<std::string> peek_key_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[kCacheEntryHeaderSize];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  if (std::memcmp(header, "ATTNCKC\0", 8) != 0) return std::nullopt;
  if (read_le64(header + 8) % (uint64_t{1} << 32) != kCacheEntryVersion) return std::nullopt;
  const uint64_t key_size = read_le64(header + 16);
  if (key_size == 0 || key_size > (1 << 16)) return std::nullopt;
  std::string text(key_size, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(key_size))) return std::nullopt;
  return text;
}

std::pair<int, int> version_numbers(const std::string& version) {
  int major = 0, minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) < 1) return {-1, -1};
  return {major, minor};
}

// Disk entries whose keys equal `any` but for the NVRTC version, newest NVRTC first.
std::vector<KernelKey> scan_directory(const std::filesystem::path& directory, const std::string& any_text) {
  std::vector<KernelKey> found;
  std::error_code error;
  for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    if (it->path().extension() != ".kernel") continue;
    std::optional<std::string> text = peek_key_text(it->path());
    if (!text) continue;
    std::optional<KernelKey> key = KernelKey::parse(*text);
    if (!key || key->nvrtc_version == kAnyNvrtcVersion) continue;
    KernelKey relaxed = *key;
    relaxed.nvrtc_version = kAnyNvrtcVersion;
    if (relaxed.serialize() == any_text) found.push_back(std::move(*key));
  }
  std::sort(found.begin(), found.end(), [](const KernelKey& a, const KernelKey& b) {
    return version_numbers(a.nvrtc_version) > version_numbers(b.nvrtc_version);
  });
  return found;
}

struct Found {
  KernelKey key;
  std::shared_ptr<const CachedKernel> kernel;
  CacheSource source = CacheSource::Memory;
};

// `key` from the cache without compiling, telling memory from disk by the cache's counters.
std::optional<Found> find_cached(KernelCache& cache, const KernelKey& key) {
  const uint64_t disk_hits = cache.stats().disk_hits;
  std::shared_ptr<const CachedKernel> kernel = cache.find(key);
  if (!kernel) return std::nullopt;
  return Found{key, kernel, cache.stats().disk_hits > disk_hits ? CacheSource::Disk : CacheSource::Memory};
}

Found find_or_compile(KernelCache& cache, const CudaKernelRequest& request) {
  const KernelKey any = make_cuda_kernel_key(request, kAnyNvrtcVersion);
  const std::string any_text = any.serialize();
  KernelIndex& index = kernel_index();
  auto remember = [&](const KernelKey& full) {
    std::lock_guard guard(index.mutex);
    index.full_keys.insert_or_assign({&cache, any_text}, full);
  };

  std::optional<KernelKey> known;
  {
    std::lock_guard guard(index.mutex);
    auto it = index.full_keys.find({&cache, any_text});
    if (it != index.full_keys.end()) known = it->second;
  }
  if (known) {
    if (std::optional<Found> found = find_cached(cache, *known)) return *found;
  }
  if (cache.has_disk()) {
    for (const KernelKey& candidate : scan_directory(cache.directory(), any_text)) {
      if (std::optional<Found> found = find_cached(cache, candidate)) {
        remember(candidate);
        return *found;
      }
    }
  }

  // Nothing cached by any NVRTC: this is the only path that loads it.
  if (!Nvrtc::available()) {
    throw NvrtcUnavailable(fmt::format(
        "the kernel {} is not in the kernel cache{} and NVRTC cannot compile it: {}", any.summary(),
        cache.has_disk() ? " (" + cache.directory().string() + ")" : std::string(), Nvrtc::unavailable_reason()));
  }
  KernelKey full = make_cuda_kernel_key(request, Nvrtc::get().version());
  CacheResult result =
      cache.get_or_compile(full, [&request](const KernelKey&) { return attnc::compile_cuda_kernel(request); });
  remember(full);
  return Found{full, result.kernel, result.source};
}

// "entry=NAME\n..." -> NAME
std::string metadata_value(const std::string& metadata, const std::string& name) {
  const std::string prefix = name + "=";
  size_t at = 0;
  while (at < metadata.size()) {
    size_t end = metadata.find('\n', at);
    if (end == std::string::npos) end = metadata.size();
    if (metadata.compare(at, prefix.size(), prefix) == 0)
      return metadata.substr(at + prefix.size(), end - at - prefix.size());
    at = end + 1;
  }
  return "";
}

void check_mod_kind(const Mod* mod, dsl::ModKind kind, const char* role) {
  if (mod != nullptr && mod->kind() != kind) {
    throw RuntimeError(fmt::format("{} is not a {}", mod->describe(), role));
  }
}

std::string current_arch(int device) {
  CudaDriver& driver = CudaDriver::get();
  if (device < 0 || device >= driver.device_count()) {
    throw RuntimeError(fmt::format("CUDA device {} does not exist ({} found)", device, driver.device_count()));
  }
  return driver.device_info(device).arch();
}

// ---- Launch checks ----

constexpr const char* kLaunch = "cuda attention";

void check_device_tensor(const Tensor& t, const char* role, DType dtype) {
  if (!t.defined()) throw RuntimeError(fmt::format("{}: {} is undefined", kLaunch, role));
  if (t.device() != Device::Cuda) {
    throw RuntimeError(fmt::format("{}: {} must be a CUDA tensor, got {}", kLaunch, role, t.describe()));
  }
  if (t.dtype() != dtype) {
    throw RuntimeError(
        fmt::format("{}: {} must be {} (the kernel's dtype), got {}", kLaunch, role, dtype_name(dtype), t.describe()));
  }
}

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

void check_mod_matches(const Mod* mod, const std::optional<ir::Signature>& compiled, const char* role) {
  if ((mod != nullptr) != compiled.has_value()) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled {} a {}, but the launch passes {}", kLaunch,
                                   compiled ? "with" : "without", role, mod ? mod->describe() : "none"));
  }
  if (mod == nullptr) return;
  if (mod->signature() != *compiled) {
    throw RuntimeError(
        fmt::format("{}: {} differs from the {} the kernel was compiled for (other code or tensor "
                    "storage types)",
                    kLaunch, mod->describe(), role));
  }
  if (!mod->fully_bound()) {
    std::string names;
    for (const std::string& name : mod->unbound_params()) names += (names.empty() ? "'" : ", '") + name + "'";
    throw RuntimeError(fmt::format("{}: {} has unbound parameters: {}", kLaunch, mod->describe(), names));
  }
}

std::vector<ir::ParamBinding> device_bindings(const Mod* mod) {
  std::vector<ir::ParamBinding> bindings;
  if (mod == nullptr) return bindings;
  for (size_t i = 0; i < mod->def().params.size(); ++i) {
    const Mod::Argument& argument = *mod->argument(i);
    if (const auto* value = std::get_if<ir::Value>(&argument)) {
      bindings.emplace_back(*value);
      continue;
    }
    const Tensor& tensor = std::get<Tensor>(argument);
    if (tensor.device() != Device::Cuda) {
      throw RuntimeError(fmt::format("{}: {}: tensor parameter '{}' must be a CUDA tensor for a CUDA launch, got {}",
                                     kLaunch, mod->describe(), mod->def().params[i].name, tensor.describe()));
    }
    bindings.emplace_back(ir::TensorArg{tensor.data(), tensor.dtype(), tensor.shape(), tensor.strides()});
  }
  return bindings;
}

int32_t as_int32(int64_t value) { return static_cast<int32_t>(value); }

}  // namespace

// ---- CudaKernel ----

CudaKernel::CudaKernel(KernelKey key, CacheSource source, std::shared_ptr<const CachedKernel> binary,
                       ir::CudaModSource mods, int device)
    : key_(std::move(key)), source_(source), mods_(std::move(mods)), device_(device) {
  cubin_.assign(binary->payload.begin(), binary->payload.end());
  entry_ = metadata_value(binary->metadata, "entry");
  if (entry_.empty() || metadata_value(binary->metadata, "flash_attention") != "1") {
    throw RuntimeError("kernel cache entry " + key_.hash_hex() + " is not a flash-attention kernel (metadata '" +
                       binary->metadata + "')");
  }
  tile_ = TileConfig{key_.tile.block_m, key_.tile.block_n, key_.tile.num_warps};
  shared_bytes_ = flash_shared_bytes(tile_, key_.head_dim, key_.head_dim_v);
}

CudaKernel::~CudaKernel() = default;

CuFunction CudaKernel::function() const {
  std::lock_guard guard(load_mutex_);
  CudaDriver& driver = CudaDriver::get();
  driver.use_device(device_);
  if (function_ == nullptr) {
    module_ = std::make_unique<CudaModule>(cubin_);
    CuFunction function = module_->function(entry_);
    // Above 48 KiB a kernel must opt into its dynamic shared memory.
    if (shared_bytes_ > 48 * 1024) driver.set_max_dynamic_shared(function, static_cast<int>(shared_bytes_));
    function_ = function;
  }
  return function_;
}

std::vector<unsigned char> CudaKernel::pack_arguments(const Tensor& q, const Tensor& k, const Tensor& v,
                                                      const Tensor& out, const Tensor* lse, const Mod* score_mod,
                                                      const Mod* mask_mod, std::optional<float> scale,
                                                      void* bounds) const {
  check_device_tensor(q, "q", key_.dtype);
  check_device_tensor(k, "k", key_.dtype);
  check_device_tensor(v, "v", key_.dtype);
  check_device_tensor(out, "out", key_.dtype);
  if (lse != nullptr) check_device_tensor(*lse, "lse", DType::F32);
  for (auto [t, role] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}}) {
    if (t->rank() != 4)
      throw RuntimeError(fmt::format("{}: {} must have rank 4, got {}", kLaunch, role, t->describe()));
  }
  // The shape rules are the CPU's; the checks run on shapes only (AttentionChecks refuses CUDA
  // tensors), so they are repeated here with the kernel's head dims.
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), Skv = k.size(2), Dv = v.size(3);
  if (D != key_.head_dim || k.size(3) != key_.head_dim || Dv != key_.head_dim_v) {
    throw RuntimeError(fmt::format("{}: the kernel was compiled for head dims {}/{} (q/k, v), got q {}, k {}, v {}",
                                   kLaunch, key_.head_dim, key_.head_dim_v, q.describe(), k.describe(), v.describe()));
  }
  if (k.size(0) != B || v.size(0) != B || v.size(1) != Hkv || v.size(2) != Skv) {
    throw RuntimeError(
        fmt::format("{}: k and v must be (B, Hkv, Skv, D) and (B, Hkv, Skv, Dv) with q's B, got q {}, "
                    "k {}, v {}",
                    kLaunch, q.describe(), k.describe(), v.describe()));
  }
  if (Hkv <= 0 || H % Hkv != 0) {
    throw RuntimeError(
        fmt::format("{}: the query heads ({}) must be a multiple of the key/value heads ({})", kLaunch, H, Hkv));
  }
  if (out.size(0) != B || out.size(1) != H || out.size(2) != S || out.size(3) != Dv) {
    throw RuntimeError(fmt::format("{}: out must be ({}, {}, {}, {}), got {}", kLaunch, B, H, S, Dv, out.describe()));
  }
  if (lse != nullptr && (lse->rank() != 3 || lse->size(0) != B || lse->size(1) != H || lse->size(2) != S)) {
    throw RuntimeError(fmt::format("{}: lse must be ({}, {}, {}), got {}", kLaunch, B, H, S, lse->describe()));
  }
  for (int64_t extent : {B, H, S, Skv}) {
    if (extent > INT32_MAX) throw RuntimeError(fmt::format("{}: sizes must fit in int32", kLaunch));
  }
  check_layout(q, "q");
  check_layout(k, "k");
  check_layout(v, "v");
  check_layout(out, "out");
  check_mod_matches(score_mod, key_.score_mod, "score mod");
  check_mod_matches(mask_mod, key_.mask_mod, "mask mod");

  const std::vector<ir::ParamBinding> score_args = device_bindings(score_mod);
  const std::vector<ir::ParamBinding> mask_args = device_bindings(mask_mod);
  const std::vector<unsigned char> mod_bytes = pack_mod_params(mods_, score_args, mask_args);

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
  p.batch = as_int32(B);
  p.num_heads = as_int32(H);
  p.num_kv_heads = as_int32(Hkv);
  p.q_len = as_int32(S);
  p.kv_len = as_int32(Skv);
  p.scale = scale.value_or(1.0f / std::sqrt(static_cast<float>(D)));

  const size_t mods_offset = align_up(kModsUnaligned, mods_.params_align);
  const size_t bounds_offset = align_up(mods_offset + mods_.params_size, alignof(void*));
  std::vector<unsigned char> bytes(bounds_offset + sizeof(void*), 0);
  std::memcpy(bytes.data(), &p, kModsUnaligned);
  ATTNC_ASSERT(mod_bytes.size() == mods_.params_size, "packed ModParams size");
  std::memcpy(bytes.data() + mods_offset, mod_bytes.data(), mod_bytes.size());
  std::memcpy(bytes.data() + bounds_offset, &bounds, sizeof bounds);
  return bytes;
}

void CudaKernel::launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor* lse,
                        const Mod* score_mod, const Mod* mask_mod, std::optional<float> scale, CuStream stream) const {
  CudaDriver& driver = CudaDriver::get();
  // Checks first: a bad call must not allocate, load or launch anything.
  std::vector<unsigned char> bytes = pack_arguments(q, k, v, out, lse, score_mod, mask_mod, scale, nullptr);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2);
  if (B == 0 || H == 0 || S == 0) return;
  CuFunction kernel = function();

  CuDevicePtr report = 0;
  if (key_.check_bounds) {
    report = driver.allocate(sizeof(attnc_abi::BoundsReport));
    driver.memset(report, 0, sizeof(attnc_abi::BoundsReport));
    bytes = pack_arguments(q, k, v, out, lse, score_mod, mask_mod, scale, reinterpret_cast<void*>(report));
  }
  void* params[] = {bytes.data()};
  const unsigned grid_x = static_cast<unsigned>((S + tile_.block_m - 1) / tile_.block_m);
  try {
    driver.launch(kernel, grid_x, static_cast<unsigned>(H), static_cast<unsigned>(B), threads(), 1, 1,
                  static_cast<unsigned>(shared_bytes_), stream, params);
  } catch (...) {
    if (report != 0) driver.free(report);
    throw;
  }
  if (report == 0) return;

  attnc_abi::BoundsReport found{};
  try {
    driver.synchronize(stream);
    driver.copy_to_host(&found, report, sizeof found);
  } catch (...) {
    driver.free(report);
    throw;
  }
  driver.free(report);
  if (found.failed == 0) return;
  // The report's param indexes the generated fields: the score mod's parameters, then the mask mod's.
  const size_t field = static_cast<size_t>(found.param);
  ATTNC_ASSERT(field < mods_.fields.size(), "bounds report names no parameter");
  const ir::CudaParamField& f = mods_.fields[field];
  const Mod* mod = f.from_mask ? mask_mod : score_mod;
  throw RuntimeError(out_of_range_message(kLaunch, *mod, f.param, found.dim, found.index, found.extent, found.b,
                                          found.h, found.q_idx, found.kv_idx));
}

// ---- Compiling ----

std::shared_ptr<const CudaKernel> compile_cuda_kernel(const CudaKernelSpec& spec, KernelCache& cache) {
  check_mod_kind(spec.score_mod, dsl::ModKind::Score, "score mod");
  check_mod_kind(spec.mask_mod, dsl::ModKind::Mask, "mask mod");
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(fmt::format("the CUDA kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  CudaKernelRequest request;
  if (spec.score_mod != nullptr) {
    request.score = &spec.score_mod->def();
    request.score_storage = spec.score_mod->storage_types();
  }
  if (spec.mask_mod != nullptr) {
    request.mask = &spec.mask_mod->def();
    request.mask_storage = spec.mask_mod->storage_types();
  }
  request.spec.dtype = spec.dtype;
  request.spec.head_dim = spec.head_dim;
  request.spec.head_dim_v = spec.head_dim_v == 0 ? spec.head_dim : spec.head_dim_v;
  request.spec.arch = spec.arch.empty() ? current_arch(spec.device) : spec.arch;
  request.check_bounds = spec.check_bounds;

  Found found = find_or_compile(cache, request);
  ir::CudaCodegenOptions codegen;
  codegen.check_bounds = spec.check_bounds;
  ir::CudaModSource mods =
      ir::generate_cuda_mods(request.score, request.score_storage, request.mask, request.mask_storage, codegen);
  return std::make_shared<const CudaKernel>(std::move(found.key), found.source, std::move(found.kernel),
                                            std::move(mods), spec.device);
}

KernelCache& default_kernel_cache() {
  static KernelCache cache{KernelCacheOptions{}};
  return cache;
}

void cuda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const AttentionOptions& options, Tensor* lse) {
  for (auto [t, role] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    if (!t->defined() || t->rank() != 4) {
      throw RuntimeError(fmt::format("{}: {} must have rank 4, got {}", kLaunch, role, t->describe()));
    }
  }
  // An undefined LSE is allocated on the device, freed with the last copy of the tensor.
  if (lse != nullptr && !lse->defined()) *lse = empty_device_tensor(DType::F32, {q.size(0), q.size(1), q.size(2)});

  CudaKernelSpec spec;
  spec.score_mod = options.score_mod;
  spec.mask_mod = options.mask_mod;
  spec.dtype = q.dtype();
  spec.head_dim = static_cast<int>(q.size(3));
  spec.head_dim_v = static_cast<int>(v.size(3));
  spec.check_bounds = options.check_bounds;
  {
    // The device's architecture, asked once per process.
    static std::mutex mutex;
    static std::string arch;
    std::lock_guard guard(mutex);
    if (arch.empty()) arch = current_arch(0);
    spec.arch = arch;
  }

  // Kernel objects per key for the life of the process: each loads its module once.
  static std::mutex kernels_mutex;
  static std::unordered_map<std::string, std::shared_ptr<const CudaKernel>> kernels;
  CudaKernelRequest probe;
  probe.score = spec.score_mod ? &spec.score_mod->def() : nullptr;
  probe.mask = spec.mask_mod ? &spec.mask_mod->def() : nullptr;
  if (spec.score_mod) probe.score_storage = spec.score_mod->storage_types();
  if (spec.mask_mod) probe.mask_storage = spec.mask_mod->storage_types();
  check_mod_kind(spec.score_mod, dsl::ModKind::Score, "score mod");
  check_mod_kind(spec.mask_mod, dsl::ModKind::Mask, "mask mod");
  probe.spec = KernelSpec{spec.dtype, spec.head_dim, spec.head_dim_v, spec.arch};
  probe.check_bounds = spec.check_bounds;
  if (spec.dtype != DType::BF16 && spec.dtype != DType::F16) {
    throw RuntimeError(fmt::format("the CUDA kernel takes bf16 or fp16 inputs, not {}", dtype_name(spec.dtype)));
  }
  const std::string text = make_cuda_kernel_key(probe, kAnyNvrtcVersion).serialize();
  std::shared_ptr<const CudaKernel> kernel;
  {
    std::lock_guard guard(kernels_mutex);
    auto it = kernels.find(text);
    if (it != kernels.end()) kernel = it->second;
  }
  if (!kernel) {
    kernel = compile_cuda_kernel(spec, default_kernel_cache());
    std::lock_guard guard(kernels_mutex);
    kernels.emplace(text, kernel);
  }
  kernel->launch(q, k, v, out, lse, options.score_mod, options.mask_mod, options.scale, nullptr);
  CudaDriver::get().synchronize(nullptr);
}

}  // namespace attnc::cuda
