#include "runtime/families/decode/KvAppend.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/families/decode/kv_append.cuh"

namespace attnc::decode {

namespace {

constexpr const char* kFunction = "append_kv";

static_assert(sizeof(KvAppendRow) == sizeof(attnc_append::AppendRow) &&
              offsetof(KvAppendRow, kv_row) == offsetof(attnc_append::AppendRow, kv_row) &&
              offsetof(KvAppendRow, start) == offsetof(attnc_append::AppendRow, start) &&
              offsetof(KvAppendRow, count) == offsetof(attnc_append::AppendRow, count));

[[noreturn]] void fail(const std::string& message) { throw RuntimeError(fmt::format("{}: {}", kFunction, message)); }

void check_new(const Tensor& t, const char* role, const Tensor& cache, int64_t rows) {
  if (!t.defined() || t.rank() != 4) {
    fail(fmt::format("{} must be a rank-4 (N, Hkv, T, D) tensor, got {}", role,
                     t.defined() ? t.describe() : std::string("an undefined tensor")));
  }
  if (t.dtype() != cache.dtype() || t.device() != cache.device()) {
    fail(fmt::format("{} {} must have the cache's dtype and device ({} on {})", role, t.describe(),
                     dtype_name(cache.dtype()), device_name(cache.device())));
  }
  if (t.size(0) != rows || t.size(1) != cache.size(1) || t.size(3) != cache.size(3)) {
    fail(fmt::format("{} {} must be ({}, {}, T, {}): a row per append row, the cache's KV heads and head dim", role,
                     t.describe(), rows, cache.size(1), cache.size(3)));
  }
}

// 16-byte rows at 16-byte aligned addresses with 16-byte multiple strides (the CUDA kernel's copies).
void check_rows_16(const Tensor& t, const char* role) {
  const int64_t element = static_cast<int64_t>(dtype_size(t.dtype()));
  bool ok = reinterpret_cast<uintptr_t>(t.data()) % 16 == 0 && (t.size(3) == 1 || t.stride(3) == 1) &&
            t.size(3) * element % 16 == 0;
  for (size_t d = 0; d < 3; ++d) ok = ok && (t.size(d) <= 1 || t.stride(d) * element % 16 == 0);
  if (!ok) {
    fail(
        fmt::format("on CUDA, {} needs 16-byte aligned rows that are a whole number of 16-byte chunks, the head dim "
                    "contiguous and strides of 16-byte multiples; got {}",
                    role, t.describe()));
  }
}

void check_append(const KvSource& dst, const Tensor& k_new, const Tensor& v_new, std::span<const KvAppendRow> rows) {
  if (!dst.k.defined() || !dst.v.defined() || dst.k.rank() != 4 || dst.v.rank() != 4) {
    fail("the cache's k and v must be rank-4 tensors");
  }
  const auto n = static_cast<int64_t>(rows.size());
  check_new(k_new, "k", dst.k, n);
  check_new(v_new, "v", dst.v, n);
  if (v_new.size(2) != k_new.size(2)) {
    fail(fmt::format("k {} and v {} hold different numbers of new tokens", k_new.describe(), v_new.describe()));
  }
  const int64_t new_len = k_new.size(2);
  const int64_t kv_rows = dst.paged() ? dst.block_table.size(0) : dst.k.size(0);
  const int64_t width = dst.paged() ? dst.block_table.size(1) : 0;
  std::span<const int32_t> table = dst.host_block_table;
  if (dst.paged() && table.empty() && dst.block_table.device() == Device::Cpu) {
    table = std::span<const int32_t>(static_cast<const int32_t*>(dst.block_table.data()),
                                     static_cast<size_t>(dst.block_table.numel()));
  }
  if (dst.paged() && static_cast<int64_t>(table.size()) != kv_rows * width) {
    fail("a paged cache on a device needs the host copy of its block table");
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const KvAppendRow& r = rows[i];
    if (r.kv_row < 0 || r.kv_row >= kv_rows)
      fail(fmt::format("row {} writes KV row {}, outside the {}", i, r.kv_row, kv_rows));
    if (r.count < 0 || r.count > new_len) {
      fail(fmt::format("row {} appends {} tokens; it must be between 0 and the {} new tokens given", i, r.count,
                       new_len));
    }
    if (r.start < 0) fail(fmt::format("row {} starts at the negative position {}", i, r.start));
    if (r.count == 0) continue;
    const int64_t last = int64_t{r.start} + r.count - 1;
    if (!dst.paged()) {
      if (last >= dst.k.size(2)) {
        fail(fmt::format("row {} writes positions {} to {}, past the capacity of {} tokens", i, r.start, last,
                         dst.k.size(2)));
      }
      continue;
    }
    for (int64_t entry = r.start / dst.page_size; entry <= last / dst.page_size; ++entry) {
      if (entry >= width) {
        fail(fmt::format("row {} writes position {}, past the {} pages of a block-table row", i, last, width));
      }
      const int32_t page = table[static_cast<size_t>(r.kv_row * width + entry)];
      if (page < 0 || page >= dst.k.size(0)) {
        fail(fmt::format("block table row {} entry {} is page {}, outside the pool of {} pages", r.kv_row, entry, page,
                         dst.k.size(0)));
      }
    }
  }
}

// The destination element offset (in elements) of (row, head g, position).
int64_t destination(const Tensor& t, const KvSource& dst, std::span<const int32_t> table, const KvAppendRow& r,
                    int64_t g, int64_t position) {
  int64_t page = r.kv_row, at = position;
  if (dst.paged()) {
    page = table[static_cast<size_t>(r.kv_row * dst.block_table.size(1) + position / dst.page_size)];
    at = position % dst.page_size;
  }
  return page * t.stride(0) + g * t.stride(1) + at * t.stride(2);
}

void copy_on_cpu(const KvSource& dst, const Tensor& from, const Tensor& to, std::span<const KvAppendRow> rows) {
  std::span<const int32_t> table = dst.host_block_table;
  if (dst.paged() && table.empty()) {
    table = std::span<const int32_t>(static_cast<const int32_t*>(dst.block_table.data()),
                                     static_cast<size_t>(dst.block_table.numel()));
  }
  const size_t element = dtype_size(to.dtype());
  const int64_t dim = to.size(3);
  const auto* src = static_cast<const unsigned char*>(from.data());
  auto* out = static_cast<unsigned char*>(to.data());
  for (size_t n = 0; n < rows.size(); ++n) {
    for (int64_t g = 0; g < to.size(1); ++g) {
      for (int64_t t = 0; t < rows[n].count; ++t) {
        const int64_t s = static_cast<int64_t>(n) * from.stride(0) + g * from.stride(1) + t * from.stride(2);
        const int64_t d = destination(to, dst, table, rows[n], g, rows[n].start + t);
        for (int64_t i = 0; i < dim; ++i) {
          std::memcpy(out + (d + i * to.stride(3)) * static_cast<int64_t>(element),
                      src + (s + i * from.stride(3)) * static_cast<int64_t>(element), element);
        }
      }
    }
  }
}

const std::vector<cuda::SourceHeader>& append_headers() {
  static const std::vector<cuda::SourceHeader> headers = cuda::embedded_headers({"kv_append.cuh"});
  return headers;
}

cuda::NvrtcOptions append_options(const std::string& arch) {
  cuda::NvrtcOptions options;
  options.arch = arch;
  return options;
}

// The loaded append kernel of device 0, kept for the life of the process.
cuda::CuFunction append_function() {
  static std::mutex mutex;
  static std::unique_ptr<cuda::CudaModule> module;
  static cuda::CuFunction function = nullptr;
  std::lock_guard guard(mutex);
  if (function == nullptr) {
    cuda::CudaDriver& driver = cuda::CudaDriver::get();
    driver.use_device(0);
    const std::string arch = driver.device_info(0).arch();
    const cuda::CudaBinary binary = cuda::compile_through_cache(cuda::default_kernel_cache(), kv_append_key(arch),
                                                                kAppendEntry, kv_append_program, append_options(arch));
    module = std::make_unique<cuda::CudaModule>(
        std::vector<char>(binary.kernel->payload.begin(), binary.kernel->payload.end()));
    function = module->function(kAppendEntry);
  }
  cuda::CudaDriver::get().use_device(0);
  return function;
}

void copy_on_cuda(const KvSource& dst, const Tensor& k_new, const Tensor& v_new, std::span<const KvAppendRow> rows) {
  check_rows_16(k_new, "k");
  check_rows_16(v_new, "v");
  check_rows_16(dst.k, "the cache's k");
  check_rows_16(dst.v, "the cache's v");
  int64_t most = 0;
  for (const KvAppendRow& r : rows) most = std::max<int64_t>(most, r.count);
  if (rows.empty() || most == 0) return;
  const cuda::CuFunction function = append_function();
  const Tensor device_rows = cuda::empty_device_tensor(DType::I32, {static_cast<int64_t>(rows.size()), 3});
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  driver.copy_to_device(reinterpret_cast<cuda::CuDevicePtr>(device_rows.data()), rows.data(),
                        rows.size() * sizeof(KvAppendRow));
  const auto bytes = [](const Tensor& t, size_t d) {
    return t.stride(d) * static_cast<int64_t>(dtype_size(t.dtype()));
  };
  attnc_append::AppendParams p{};
  p.k_src = static_cast<const unsigned char*>(k_new.data());
  p.v_src = static_cast<const unsigned char*>(v_new.data());
  p.k_src_batch_stride = bytes(k_new, 0), p.k_src_head_stride = bytes(k_new, 1), p.k_src_row_stride = bytes(k_new, 2);
  p.v_src_batch_stride = bytes(v_new, 0), p.v_src_head_stride = bytes(v_new, 1), p.v_src_row_stride = bytes(v_new, 2);
  p.k_dst = static_cast<unsigned char*>(dst.k.data());
  p.v_dst = static_cast<unsigned char*>(dst.v.data());
  p.k_dst_page_stride = bytes(dst.k, 0), p.k_dst_head_stride = bytes(dst.k, 1), p.k_dst_row_stride = bytes(dst.k, 2);
  p.v_dst_page_stride = bytes(dst.v, 0), p.v_dst_head_stride = bytes(dst.v, 1), p.v_dst_row_stride = bytes(dst.v, 2);
  if (dst.paged()) {
    p.block_table = static_cast<const int32_t*>(dst.block_table.data());
    p.block_table_stride = dst.block_table.stride(0);
    while ((1 << p.page_shift) < dst.page_size) ++p.page_shift;
  }
  p.rows = static_cast<const attnc_append::AppendRow*>(device_rows.data());
  p.k_chunks = static_cast<int32_t>(k_new.size(3) * static_cast<int64_t>(dtype_size(k_new.dtype())) / 16);
  p.v_chunks = static_cast<int32_t>(v_new.size(3) * static_cast<int64_t>(dtype_size(v_new.dtype())) / 16);
  void* params[] = {&p};
  driver.launch(function, static_cast<unsigned>(most), static_cast<unsigned>(k_new.size(1)),
                static_cast<unsigned>(rows.size()), 32, 1, 1, 0, nullptr, params);
  driver.synchronize(nullptr);
}

}  // namespace

KernelKey kv_append_key(const std::string& arch) {
  KernelKey key;
  key.family = kAppendFamily;
  cuda::add_cuda_key_fields(key, append_options(arch), cuda::template_hash(append_headers()));
  return key;
}

cuda::KernelProgram kv_append_program() {
  cuda::KernelProgram program;
  program.name = "attnc_kv_append.cu";
  program.headers = append_headers();
  program.source = fmt::format("#include \"kv_append.cuh\"\nATTNC_INSTANTIATE_KV_APPEND({})\n", kAppendEntry);
  return program;
}

void append_kv(const KvSource& dst, const Tensor& k_new, const Tensor& v_new, std::span<const KvAppendRow> rows) {
  check_append(dst, k_new, v_new, rows);
  if (dst.k.device() == Device::Cpu) {
    copy_on_cpu(dst, k_new, dst.k, rows);
    copy_on_cpu(dst, v_new, dst.v, rows);
  } else {
    copy_on_cuda(dst, k_new, v_new, rows);
  }
}

}  // namespace attnc::decode
