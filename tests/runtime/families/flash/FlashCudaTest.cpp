// The CUDA attention API (runtime/families/flash/FlashCuda.h, runtime/Attention.h).
//
// Without a GPU: compiling through the cache (a different window reuses the kernel, signature-equal
// mods share one entry, a pre-warmed cache serves a process that cannot load NVRTC), the launch's
// argument checks and the bytes of the kernel argument (launch checks arguments before touching
// the driver), and the ptxas resource report of the main configurations (no spills).
// With a GPU: every built-in mod x dtype x head dim x causal / non-causal x shapes (odd lengths,
// q_len != kv_len, GQA / MQA) against the reference attention, outputs poisoned with NaN first.
// Where NVRTC or the driver is missing, the tests say so in one WARN line and pass.

#include "runtime/families/flash/FlashCuda.h"

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "compiler/Frontend.h"
#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/flash/flash_attention.cuh"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
using namespace attnc::cuda;
using namespace attnc::flash;

namespace {

KernelCacheOptions memory_only() {
  KernelCacheOptions options;
  options.use_disk = false;
  return options;
}

std::filesystem::path fresh_directory(const std::string& name) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("attnc-cudaattn-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// A fake CUDA tensor: launch checks look at shapes, strides and the pointer's alignment only, and
// pack_arguments never dereferences it.
Tensor fake_cuda(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {}, uintptr_t address = 4096) {
  return Tensor::from_data(reinterpret_cast<void*>(address), dtype, std::move(shape), std::move(strides), Device::Cuda);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Compiling through the cache (NVRTC, no GPU).

TEST_CASE("a different window value reuses the compiled kernel", "[cuda][cache]") {
  if (!nvrtc_or_warn()) return;
  KernelCache cache(memory_only());
  const Mod narrow = sliding_window_mod(64, true), wide = sliding_window_mod(1000, true);
  auto first = load_flash(flash_spec(nullptr, &narrow, DType::BF16, 64, "sm_80"), cache);
  auto second = load_flash(flash_spec(nullptr, &wide, DType::BF16, 64, "sm_80"), cache);
  CHECK(first->source() == CacheSource::Compiled);
  CHECK(second->source() == CacheSource::Memory);
  CHECK(first->key() == second->key());
  CHECK(cache.stats().compiles == 1);
  CHECK(first->cubin() == second->cubin());
  CHECK(*first->key().find("block_m") == std::to_string(choose_tile_config(64, 64, 80).block_m));
  CHECK(first->tile() == choose_tile_config(64, 64, 80));
  // Another head dim is another kernel.
  auto third = load_flash(flash_spec(nullptr, &wide, DType::BF16, 128, "sm_80"), cache);
  CHECK(third->source() == CacheSource::Compiled);
  CHECK(cache.stats().compiles == 2);
}

TEST_CASE("signature-equal mods share one cache entry", "[cuda][cache]") {
  if (!nvrtc_or_warn()) return;
  KernelCache cache(memory_only());
  const ir::Module module = ir::load_module_text("mine.attn",
                                                 "mask_mod my_causal = q_idx >= kv_idx;\n"
                                                 "mask_mod other = q_idx > kv_idx;\n");
  const Mod mine = Mod::from_module(module, "my_causal"), builtin = causal_mod(),
            other = Mod::from_module(module, "other");
  REQUIRE(mine.signature() == builtin.signature());
  auto a = load_flash(flash_spec(nullptr, &builtin, DType::F16, 64, "sm_90"), cache);
  auto b = load_flash(flash_spec(nullptr, &mine, DType::F16, 64, "sm_90"), cache);
  CHECK(cache.stats().compiles == 1);
  CHECK(b->source() == CacheSource::Memory);
  CHECK(a->key().hash_hex() == b->key().hash_hex());
  auto c = load_flash(flash_spec(nullptr, &other, DType::F16, 64, "sm_90"), cache);
  CHECK(cache.stats().compiles == 2);
  CHECK(c->key().hash_hex() != a->key().hash_hex());
}

TEST_CASE("compiling refuses mods of the wrong kind and unsupported dtypes", "[cuda][cache]") {
  KernelCache cache(memory_only());
  const Mod mask = causal_mod(), score = softcap_mod(10.0f);
  CHECK_THROWS_WITH(load_flash(flash_spec(&mask, nullptr, DType::BF16, 64, "sm_80"), cache),
                    Catch::Contains("is not a score mod"));
  CHECK_THROWS_WITH(load_flash(flash_spec(nullptr, &score, DType::BF16, 64, "sm_80"), cache),
                    Catch::Contains("is not a mask mod"));
  CHECK_THROWS_WITH(load_flash(flash_spec(nullptr, nullptr, DType::F32, 64, "sm_80"), cache),
                    Catch::Contains("bf16 or fp16"));
  CHECK_THROWS_AS(load_flash(flash_spec(nullptr, nullptr, DType::BF16, 72, "sm_80"), cache), RuntimeError);
  CHECK_THROWS_AS(load_flash(flash_spec(nullptr, nullptr, DType::BF16, 64, "sm_70"), cache), RuntimeError);
  CHECK(cache.stats().compiles == 0);
}

// The child half of the next test, run in a process whose NVRTC cannot be loaded.
TEST_CASE("[child] a pre-warmed cache serves kernels without NVRTC", "[.cuda-no-nvrtc-child]") {
  const char* dir = std::getenv("ATTNC_TEST_WARM_CACHE");
  REQUIRE(dir != nullptr);
  REQUIRE_FALSE(Nvrtc::available());
  KernelCacheOptions options;
  options.directory = dir;
  KernelCache cache(options);
  const Mod window = sliding_window_mod(300, true);  // warmed with another window value
  const FlashSpec spec = flash_spec(nullptr, &window, DType::BF16, 64, "sm_80");
  auto kernel = load_flash(spec, cache);
  CHECK(kernel->source() == CacheSource::Disk);
  CHECK_FALSE(kernel->cubin().empty());
  CHECK(*kernel->key().find("nvrtc") != kAnyNvrtcVersion);
  // Asking again is a memory hit.
  CHECK(load_flash(spec, cache)->source() == CacheSource::Memory);
  CHECK(cache.stats().compiles == 0);
  // A kernel nobody warmed needs NVRTC, and says so.
  CHECK_THROWS_WITH(load_flash(flash_spec(nullptr, &window, DType::BF16, 128, "sm_80"), cache),
                    Catch::Contains("is not in the kernel cache") && Catch::Contains("NVRTC cannot compile it"));
}

TEST_CASE("a process whose kernels are cached runs without NVRTC", "[cuda][cache]") {
  if (!nvrtc_or_warn()) return;
  const std::filesystem::path dir = fresh_directory("warm");
  {
    KernelCacheOptions options;
    options.directory = dir;
    KernelCache cache(options);
    const Mod window = sliding_window_mod(64, true);
    REQUIRE(load_flash(flash_spec(nullptr, &window, DType::BF16, 64, "sm_80"), cache)->source() ==
            CacheSource::Compiled);
  }
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = "ATTNC_NVRTC_LIBRARY=/nonexistent/libnvrtc.so ATTNC_TEST_WARM_CACHE='" + dir.string() +
                              "' '" + self + "' '[.cuda-no-nvrtc-child]' > '" + dir.string() + "/child.log' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream log(dir / "child.log");
  std::stringstream text;
  text << log.rdbuf();
  INFO(text.str());
  CHECK(status == 0);
  CHECK(text.str().find("All tests passed") != std::string::npos);
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Launch checks and the kernel argument (no GPU: nothing is dereferenced before the launch).

namespace {

std::shared_ptr<const FlashKernel> fake_kernel(const Mod* score, const Mod* mask, int head_dim, bool check_bounds) {
  // A kernel object over a fake binary: the checks and the packing need the key and the mods only.
  const FlashPlan plan = plan_flash_kernel(flash_spec(score, mask, DType::BF16, head_dim, "sm_80", check_bounds));
  auto binary = std::make_shared<const CachedKernel>(CachedKernel{"cubin", "entry=attnc_flash_forward\n"});
  return std::make_shared<const FlashKernel>(plan, plan.key.with("nvrtc", "test"), CacheSource::Compiled, binary,
                                             flash_mods(plan.spec), 0);
}

}  // namespace

TEST_CASE("launch arguments are checked with clear messages", "[cuda][launch]") {
  const Mod mask = causal_mod();
  auto kernel = fake_kernel(nullptr, &mask, 64, false);
  const Tensor q = fake_cuda(DType::BF16, {2, 4, 100, 64});
  const Tensor k = fake_cuda(DType::BF16, {2, 2, 90, 64});
  const Tensor v = fake_cuda(DType::BF16, {2, 2, 90, 64});
  const Tensor out = fake_cuda(DType::BF16, {2, 4, 100, 64});
  auto pack = [&](const Tensor& q_, const Tensor& k_, const Tensor& v_, const Tensor& out_, const Mod* m) {
    AttentionOptions options;
    options.mask_mod = m;
    return kernel->pack_arguments(q_, k_, v_, out_, nullptr, options, nullptr);
  };
  CHECK_NOTHROW(pack(q, k, v, out, &mask));
  CHECK_THROWS_WITH(pack(normal_tensor(1, DType::BF16, {2, 4, 100, 64}), k, v, out, &mask),
                    Catch::Contains("q is on cpu") && Catch::Contains("runs on cuda tensors"));
  CHECK_THROWS_WITH(pack(q, fake_cuda(DType::F16, {2, 2, 90, 64}), v, out, &mask),
                    Catch::Contains("k must be bf16 (the kernel's dtype)"));
  CHECK_THROWS_WITH(pack(q, k, v, fake_cuda(DType::BF16, {2, 4, 100, 64}, {}, 4104), &mask),
                    Catch::Contains("out must be 16-byte aligned"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 4, 100, 64}, {25600, 64, 256, 2}), k, v, out, &mask),
                    Catch::Contains("last (head) dimension contiguous"));
  CHECK_THROWS_WITH(pack(q, fake_cuda(DType::BF16, {2, 2, 90, 64}, {11540, 5770, 65, 1}), v, out, &mask),
                    Catch::Contains("multiples of 8 elements"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 4, 100, 128}), fake_cuda(DType::BF16, {2, 2, 90, 128}),
                         fake_cuda(DType::BF16, {2, 2, 90, 128}), fake_cuda(DType::BF16, {2, 4, 100, 128}), &mask),
                    Catch::Contains("compiled for head dims 64/64"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 3, 100, 64}), k, v, fake_cuda(DType::BF16, {2, 3, 100, 64}), &mask),
                    Catch::Contains("3 query heads are not a multiple of the 2 key/value heads"));
  CHECK_THROWS_WITH(pack(q, k, v, fake_cuda(DType::BF16, {2, 4, 99, 64}), &mask),
                    Catch::Contains("out must have shape [2, 4, 100, 64]"));
  CHECK_THROWS_WITH(pack(q, k, v, out, nullptr), Catch::Contains("compiled with a mask mod"));
  const Mod window = sliding_window_mod(5, true);
  CHECK_THROWS_WITH(pack(q, k, v, out, &window),
                    Catch::Contains("differs from the mask mod the kernel was compiled for"));
}

TEST_CASE("mods' tensor arguments must be on the device for a CUDA launch", "[cuda][launch]") {
  const Mod on_host = document_mask_mod(Tensor::from_vector(std::vector<int32_t>(200, 0), {2, 100}));
  auto kernel = fake_kernel(nullptr, &on_host, 64, false);
  const Tensor q = fake_cuda(DType::BF16, {2, 4, 100, 64});
  AttentionOptions options;
  options.mask_mod = &on_host;
  CHECK_THROWS_WITH(kernel->pack_arguments(q, q, q, q, nullptr, options, nullptr),
                    Catch::Contains("must be a CUDA tensor for a CUDA launch"));
  Mod on_device = on_host;
  on_device.bind("ids", fake_cuda(DType::I32, {2, 100}, {}, 8192));
  options.mask_mod = &on_device;
  CHECK_NOTHROW(kernel->pack_arguments(q, q, q, q, nullptr, options, nullptr));
}

TEST_CASE("the kernel argument has FlashParams' layout with the packed mods after it", "[cuda][launch]") {
  const Mod score = softcap_mod(7.5f);
  const Mod mask = sliding_window_mod(33, true);
  auto kernel = fake_kernel(&score, &mask, 64, true);
  const Tensor q = fake_cuda(DType::BF16, {2, 4, 100, 64}, {}, 1 << 20);
  const Tensor k = fake_cuda(DType::BF16, {2, 1, 90, 64}, {}, 2 << 20);
  const Tensor v = fake_cuda(DType::BF16, {2, 1, 90, 64}, {}, 3 << 20);
  const Tensor out = fake_cuda(DType::BF16, {2, 4, 100, 64}, {}, 4 << 20);
  const Tensor lse = fake_cuda(DType::F32, {2, 4, 100}, {}, 5 << 20);
  void* bounds = reinterpret_cast<void*>(6 << 20);
  AttentionOptions options;
  options.score_mod = &score;
  options.mask_mod = &mask;
  options.scale = 0.25f;
  options.check_bounds = true;
  const std::vector<unsigned char> bytes = kernel->pack_arguments(q, k, v, out, &lse, options, bounds);
  // ModParams of these mods: float cap, int window (4-byte aligned), so mods start right after
  // the scale and the bounds pointer follows at the next 8-byte boundary.
  struct Mods2 {
    float cap;
    int32_t window;
  };
  using Expected = attnc_flash::FlashParams<Mods2>;
  REQUIRE(bytes.size() == sizeof(Expected));
  Expected p;
  std::memcpy(static_cast<void*>(&p), bytes.data(), bytes.size());
  CHECK(p.q == q.data());
  CHECK(p.k == k.data());
  CHECK(p.out == out.data());
  CHECK(p.lse == lse.data());
  CHECK(p.q_head_stride == 100 * 64);
  CHECK(p.k_batch_stride == 90 * 64);
  CHECK(p.lse_head_stride == 100);
  CHECK(p.num_heads == 4);
  CHECK(p.num_kv_heads == 1);
  CHECK(p.q_len == 100);
  CHECK(p.kv_len == 90);
  CHECK(p.scale == 0.25f);
  CHECK(p.mods.cap == 7.5f);
  CHECK(p.mods.window == 33);
  CHECK(p.bounds == bounds);
}

TEST_CASE("attention refuses tensors on different devices", "[cuda][launch]") {
  const Tensor q = normal_tensor(1, DType::BF16, {1, 2, 16, 64});
  const Tensor kv = fake_cuda(DType::BF16, {1, 2, 16, 64});
  Tensor out = Tensor::empty(DType::BF16, {1, 2, 16, 64});
  CHECK_THROWS_WITH(attention(q, kv, q, out), Catch::Contains("q is on cpu but k is on cuda"));
  const Mod doc = document_mask_mod(fake_cuda(DType::I32, {1, 16}));
  AttentionOptions options;
  options.mask_mod = &doc;
  CHECK_THROWS_WITH(attention(q, q, q, out, options), Catch::Contains("parameter 'ids' is on cuda"));
  // All on the CPU: the CPU flash kernel runs.
  attention(q, q, q, out);
  CHECK(std::isfinite(out.get_float({0, 1, 15, 63})));
}

// ---------------------------------------------------------------------------------------------
// ptxas resource usage of the main configurations (NVRTC with --ptxas-options=-v).

namespace {

// What ptxas -v reported for a plan's kernel: registers per thread, stack, spill stores and loads.
struct PtxasUsage {
  std::string registers, stack, spill_stores, spill_loads;
};

PtxasUsage ptxas_usage(const FlashPlan& plan) {
  NvrtcOptions options = flash_nvrtc_options(plan.spec);
  options.extra = {"--ptxas-options=-v"};
  const CompiledKernel compiled = Nvrtc::get().compile(flash_program(plan, flash_mods(plan.spec)), options);
  INFO(compiled.log);
  std::smatch match, regs;
  REQUIRE(std::regex_search(compiled.log, match,
                            std::regex(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)")));
  REQUIRE(std::regex_search(compiled.log, regs, std::regex(R"(Used (\d+) registers)")));
  return {regs[1], match[1], match[2], match[3]};
}

}  // namespace

TEST_CASE("the main configurations compile without register spills", "[cuda][ptxas]") {
  if (!nvrtc_or_warn()) return;
  const Mod causal = causal_mod(), alibi = alibi_mod(16);
  std::ofstream report;
  if (const char* path = std::getenv("ATTNC_PTXAS_REPORT")) report.open(path, std::ios::app);
  for (const char* arch : {"sm_80", "sm_90"}) {
    for (DType dtype : {DType::BF16, DType::F16}) {
      for (int head_dim : {64, 128}) {
        for (bool with_alibi : {false, true}) {
          CAPTURE(arch, dtype_name(dtype), head_dim, with_alibi);
          const Mod* score = with_alibi ? &alibi : nullptr;
          const FlashPlan plan = plan_flash_kernel(flash_spec(score, &causal, dtype, head_dim, arch));
          const PtxasUsage usage = ptxas_usage(plan);
          CHECK(usage.spill_stores == "0");
          CHECK(usage.spill_loads == "0");
          if (report.is_open()) {
            report << arch << " " << dtype_name(dtype) << " d" << head_dim << (with_alibi ? " alibi+causal" : " causal")
                   << " regs=" << usage.registers << " stack=" << usage.stack << " spill_st=" << usage.spill_stores
                   << " spill_ld=" << usage.spill_loads << " tile=" << to_string(plan.tile)
                   << " smem=" << flash_shared_bytes(plan.tile, head_dim, head_dim) << "\n";
          }
        }
      }
    }
  }
}

TEST_CASE("the dropout kernels compile without register spills", "[cuda][ptxas][dropout]") {
  if (!nvrtc_or_warn()) return;
  const Mod causal = causal_mod(), softcap = softcap_mod(20.0f);
  std::ofstream report;
  if (const char* path = std::getenv("ATTNC_PTXAS_REPORT")) report.open(path, std::ios::app);
  for (const char* arch : {"sm_80", "sm_90"}) {
    for (int head_dim : {64, 128}) {
      for (bool with_softcap : {false, true}) {
        CAPTURE(arch, head_dim, with_softcap);
        FlashSpec spec = flash_spec(with_softcap ? &softcap : nullptr, &causal, DType::BF16, head_dim, arch);
        spec.dropout = true;
        const FlashPlan plan = plan_flash_kernel(spec);
        CHECK(plan.key.serialize().find("dropout") != std::string::npos);  // not the undropped kernel's key
        const PtxasUsage usage = ptxas_usage(plan);
        CHECK(usage.spill_stores == "0");
        CHECK(usage.spill_loads == "0");
        if (report.is_open()) {
          report << arch << " bf16 d" << head_dim << (with_softcap ? " softcap+causal" : " causal")
                 << " dropout regs=" << usage.registers << " spill_st=" << usage.spill_stores
                 << " spill_ld=" << usage.spill_loads << "\n";
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// On the GPU, against the reference.

namespace {

struct GpuShape {
  int batch, heads, kv_heads, q_len, kv_len;
};

// The mods of one test row, bound for the reference (CPU tensors) and for the launch (copies of
// the tensors on the device).
struct ModPair {
  std::string name;
  std::optional<Mod> score, mask;
};

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < len / 3 + b ? 0 : i < 2 * len / 3 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

// Every built-in mod, each score mod alone and under causal; shapes share B = 2 and H = 4 so one set of
// mods fits them all (the bias and document ids are sized for the longest sequence).
std::vector<ModPair> all_mods(int max_len) {
  const Mod causal = causal_mod();
  const Tensor bias = normal_tensor(5, DType::F32, {1, 4, max_len, max_len});
  std::vector<ModPair> pairs = {
      {"none", std::nullopt, std::nullopt},
      {"causal", std::nullopt, causal},
      {"causal_bottom_right", std::nullopt, causal_bottom_right_mod()},
      {"sliding_window causal 37", std::nullopt, sliding_window_mod(37, true)},
      {"sliding_window symmetric 21", std::nullopt, sliding_window_mod(21, false)},
      {"prefix_lm", std::nullopt, prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{40, 7}))},
      {"document", std::nullopt, document_mask_mod(document_ids(2, max_len))},
  };
  const std::vector<std::pair<std::string, Mod>> scores = {
      {"alibi", alibi_mod(4)},
      {"softcap 4", softcap_mod(4.0f)},
      {"additive_bias", additive_bias_mod(bias)},
      {"alibi+softcap", compose_score_mods({alibi_mod(4), softcap_mod(4.0f)})},
  };
  for (const auto& [name, score] : scores) {
    pairs.push_back({name, score, std::nullopt});
    pairs.push_back({name + " + causal", score, causal});
  }
  return pairs;
}

double relative_error(const Tensor& out, const Tensor& ref, int& nans) {
  const std::vector<float> a = out.to_float_vector(), b = ref.to_float_vector();
  double diff = 0, norm = 0;
  nans = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) {
      ++nans;
      continue;
    }
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("every built-in mod matches the reference on the GPU for each dtype, head dim and shape", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  const std::vector<GpuShape> shapes = {
      {2, 4, 4, 128, 128},  // whole tiles
      {2, 4, 2, 77, 133},   // odd lengths, q_len < kv_len, GQA
      {2, 4, 1, 150, 61},   // q_len > kv_len (bottom-right causal leaves rows empty), MQA
      {2, 4, 4, 1, 200},    // one query row (decoding)
  };
  const std::vector<ModPair> pairs = all_mods(200);
  KernelCache cache(memory_only());
  const std::string arch = CudaDriver::get().device_info(0).arch();
  for (DType dtype : {DType::BF16, DType::F16}) {
    for (int head_dim : {32, 64, 96, 128}) {
      // Compile every mod of this (dtype, head dim) in parallel before running any.
      std::vector<std::future<std::shared_ptr<const FlashKernel>>> kernels;
      for (const ModPair& pair : pairs) {
        const FlashSpec spec =
            flash_spec(pair.score ? &*pair.score : nullptr, pair.mask ? &*pair.mask : nullptr, dtype, head_dim, arch);
        kernels.push_back(std::async(std::launch::async, [spec, &cache] { return load_flash(spec, cache); }));
      }
      for (size_t m = 0; m < pairs.size(); ++m) {
        const ModPair& pair = pairs[m];
        const std::shared_ptr<const FlashKernel> kernel = kernels[m].get();
        std::optional<Mod> score_dev, mask_dev;
        if (pair.score) score_dev = on_device(*pair.score);
        if (pair.mask) mask_dev = on_device(*pair.mask);
        for (const GpuShape& s : shapes) {
          CAPTURE(pair.name, dtype_name(dtype), head_dim, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len);
          const uint32_t seed = static_cast<uint32_t>(m * 100 + head_dim + s.q_len);
          const Tensor q = normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, head_dim});
          const Tensor k = normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim});
          const Tensor v = normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim});
          const Tensor dq = to_device(q), dk = to_device(k), dv = to_device(v);
          const Tensor dout = empty_device_tensor(dtype, {s.batch, s.heads, s.q_len, head_dim});
          const Tensor dlse = empty_device_tensor(DType::F32, {s.batch, s.heads, s.q_len});
          fill_device_bytes(dout, 0xFF);  // NaN: an element the kernel does not write fails
          fill_device_bytes(dlse, 0xFF);
          AttentionOptions device_options;
          device_options.score_mod = score_dev ? &*score_dev : nullptr;
          device_options.mask_mod = mask_dev ? &*mask_dev : nullptr;
          kernel->launch(dq, dk, dv, dout, &dlse, device_options);
          CudaDriver::get().synchronize();
          const Tensor out = to_host(dout), lse = to_host(dlse);

          AttentionOptions options;
          options.score_mod = pair.score ? &*pair.score : nullptr;
          options.mask_mod = pair.mask ? &*pair.mask : nullptr;
          Tensor ref_lse;
          const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
          int nans = 0;
          const double error = relative_error(out, ref, nans);
          CAPTURE(error, nans);
          CHECK(nans == 0);
          CHECK(error < (dtype == DType::BF16 ? 1e-2 : 1e-3));
          CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
        }
      }
    }
  }
}

TEST_CASE("attention() runs on CUDA tensors and raises out-of-range indices with bounds checking", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  const Tensor q = normal_tensor(3, DType::BF16, {1, 2, 64, 64});
  const Tensor k = normal_tensor(4, DType::BF16, {1, 2, 64, 64});
  const Tensor v = normal_tensor(5, DType::BF16, {1, 2, 64, 64});
  const Mod window = sliding_window_mod(16, true);
  AttentionOptions options;
  options.mask_mod = &window;
  Tensor out = empty_device_tensor(DType::BF16, {1, 2, 64, 64});
  Tensor lse;  // allocated on the device
  attention(to_device(q), to_device(k), to_device(v), out, options, &lse);
  CHECK(lse.device() == Device::Cuda);
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  int nans = 0;
  CHECK(relative_error(to_host(out), ref, nans) < 1e-2);
  CHECK(nans == 0);
  CHECK(attnc_test::lse_mismatches(to_host(lse), ref_lse) == 0);

  // Document ids shorter than the sequence: index 60 of a 50-long axis.
  const Mod doc = on_device(document_mask_mod(document_ids(1, 50)));
  options.mask_mod = &doc;
  options.check_bounds = true;
  CHECK_THROWS_WITH(attention(to_device(q), to_device(k), to_device(v), out, options),
                    Catch::Contains("is out of range for dimension 1 of parameter 'ids' (extent 50)") &&
                        Catch::Contains("mod 'document'"));
}
