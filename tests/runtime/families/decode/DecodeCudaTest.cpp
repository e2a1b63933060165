// The decode family's CUDA side (runtime/families/decode/DecodeSource.h, DecodeCuda.h).
//
// Without a GPU: plans and keys (calls of 1 to 16 rows per KV head share a kernel, another window
// reuses it), compiling through the cache with NVRTC, the ptxas report of every configuration the
// launcher picks (no spills), the launch checks and the kernel argument's layout (on fake device
// tensors: nothing is dereferenced before a launch), and the split heuristic.
// With a GPU: every built-in mod, contiguous and paged, against the reference of each batch row, and
// attention() dispatching short queries to the decode family.

#include "runtime/families/decode/DecodeCuda.h"

#include <catch2/catch.hpp>

#include "tests/runtime/families/decode/DecodeTesting.h"
#include "tests/support/AttentionComparison.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/families/decode/decode_attention.cuh"
#include "runtime/families/flash/FlashSource.h"
#include "tests/support/CudaTesting.h"

using namespace attnc;
using namespace attnc::decode;
using namespace attnc::decode_test;

namespace {

KernelCacheOptions memory_only() {
  KernelCacheOptions options;
  options.use_disk = false;
  return options;
}

DecodeSpec spec_of(const Mod* score, const Mod* mask, DType dtype, int head_dim, int rows, const std::string& arch,
                   bool check_bounds = false) {
  DecodeSpec spec;
  spec.score = ModSpec::of(score);
  spec.mask = ModSpec::of(mask);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  spec.rows = rows;
  spec.arch = arch;
  spec.check_bounds = check_bounds;
  return spec;
}

Tensor fake_cuda(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {}, uintptr_t address = 4096) {
  return Tensor::from_data(reinterpret_cast<void*>(address), dtype, std::move(shape), std::move(strides), Device::Cuda);
}

std::shared_ptr<const DecodeKernel> fake_kernel(const Mod* score, const Mod* mask, int head_dim, int rows,
                                                bool check_bounds = false) {
  const DecodePlan plan = plan_decode_kernel(spec_of(score, mask, DType::BF16, head_dim, rows, "sm_90", check_bounds));
  auto binary = std::make_shared<const CachedKernel>(CachedKernel{"cubin", "entry=attnc_decode_split\n"});
  return std::make_shared<const DecodeKernel>(plan, plan.key.with("nvrtc", "test"), CacheSource::Compiled, binary,
                                              decode_mods(plan.spec), 0);
}

}  // namespace

TEST_CASE("decode plans: layouts by rows per KV head, stages by architecture, keys of their own",
          "[cuda][decode][cache]") {
  const Mod window = sliding_window_mod(64, true);
  const DecodePlan one = plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 1, "sm_90"));
  const DecodePlan sixteen = plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 16, "sm_90"));
  const DecodePlan thirty_two = plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 32, "sm_90"));
  const DecodePlan many = plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 128, "sm_90"));
  CHECK(one.key == sixteen.key);
  CHECK(one.tile == DecodeTile{1, 4, 3});  // sm_90: two CTAs of 3 stages per SM
  CHECK(thirty_two.tile.warps_m == 2);
  CHECK(many.tile.warps_m == 4);
  CHECK(one.key != thirty_two.key);
  CHECK(plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 1, "sm_80")).tile == DecodeTile{1, 4, 4});
  CHECK(plan_decode_kernel(spec_of(nullptr, &window, DType::BF16, 128, 1, "sm_86")).tile.stages == 2);
  // Its own family and template: the flash key of the same mod differs in both.
  flash::FlashSpec flash_spec;
  flash_spec.mask = ModSpec::of(&window);
  flash_spec.arch = "sm_90";
  const KernelKey flash_key = flash::plan_flash_kernel(flash_spec).key;
  CHECK(one.key.family == "decode");
  CHECK(*one.key.find("template") != *flash_key.find("template"));
  CHECK(*one.key.find("mask_mod") == *flash_key.find("mask_mod"));

  const Mod causal = causal_mod(), softcap = softcap_mod(2.0f);
  CHECK_THROWS_WITH(plan_decode_kernel(spec_of(&causal, nullptr, DType::BF16, 64, 1, "sm_80")),
                    Catch::Contains("is not a score mod"));
  CHECK_THROWS_WITH(plan_decode_kernel(spec_of(nullptr, &softcap, DType::BF16, 64, 1, "sm_80")),
                    Catch::Contains("is not a mask mod"));
  CHECK_THROWS_WITH(plan_decode_kernel(spec_of(nullptr, nullptr, DType::F32, 64, 1, "sm_80")),
                    Catch::Contains("bf16 or fp16"));
  CHECK_THROWS_WITH(plan_decode_kernel(spec_of(nullptr, nullptr, DType::BF16, 72, 1, "sm_80")),
                    Catch::Contains("multiples of 16 up to 256"));
  CHECK_THROWS_WITH(plan_decode_kernel(spec_of(nullptr, nullptr, DType::BF16, 256, 1, "sm_86")),
                    Catch::Contains("does not fit head dims 256/256"));
  CHECK_FALSE(decode_supported(256, 256, 86));
  CHECK(decode_supported(256, 256, 80));
  CHECK(plan_decode_kernel(spec_of(nullptr, nullptr, DType::BF16, 256, 64, "sm_80")).tile == DecodeTile{2, 2, 2});
  CHECK(decode_supported(256, 256, 90));
}

TEST_CASE("the split heuristic fills the GPU about once and never splits short or wide calls", "[decode][cache]") {
  // The issue's shape on an H200 (132 SMs, two CTAs each): 64 units -> 4 splits, 256 CTAs (0.97 waves).
  CHECK(choose_num_splits(64, 32768, 132 * 2, kCudaMinKeysPerSplit, kMaxSplits) == 4);
  // One sequence, one KV head: as many splits as fill the machine, capped.
  CHECK(choose_num_splits(1, 32768, 264, kCudaMinKeysPerSplit, kMaxSplits) == 64);
  CHECK(choose_num_splits(1, 4096, 264, kCudaMinKeysPerSplit, kMaxSplits) == 16);  // 256 keys per split at least
  // Enough units already, or too few keys: one split.
  CHECK(choose_num_splits(256, 32768, 264, kCudaMinKeysPerSplit, kMaxSplits) == 1);
  CHECK(choose_num_splits(8, 300, 264, kCudaMinKeysPerSplit, kMaxSplits) == 1);
  // The CPU: B = 4, Hkv = 8 on 16 workers is already two waves.
  CHECK(choose_num_splits(32, 16384, 16, kCpuMinKeysPerSplit, kMaxSplits) == 1);
  CHECK(choose_num_splits(2, 16384, 16, kCpuMinKeysPerSplit, kMaxSplits) == 8);
  // B = 1, Hkv = 8 on the H200: 32 splits, 256 CTAs.
  CHECK(choose_num_splits(8, 32768, 264, kCudaMinKeysPerSplit, kMaxSplits) == 32);
  for (int64_t units : {1, 3, 7, 20, 64, 100}) {
    for (int64_t slots : {2, 16, 108, 264}) {
      const int n = choose_num_splits(units, 100000, slots, kCudaMinKeysPerSplit, kMaxSplits);
      CAPTURE(units, slots, n);
      CHECK(n >= 1);
      CHECK(n <= kMaxSplits);
    }
  }
}

TEST_CASE("decode kernels compile through the cache once per layout and reuse for other arguments",
          "[cuda][decode][cache]") {
  if (!test::nvrtc_or_warn()) return;
  KernelCache cache(memory_only());
  const Mod narrow = sliding_window_mod(64, true), wide = sliding_window_mod(4096, true);
  auto first = load_decode_kernel(plan_decode_kernel(spec_of(nullptr, &narrow, DType::BF16, 128, 4, "sm_90")), cache);
  auto second = load_decode_kernel(plan_decode_kernel(spec_of(nullptr, &wide, DType::BF16, 128, 16, "sm_90")), cache);
  CHECK(first->source() == CacheSource::Compiled);
  CHECK(second->source() == CacheSource::Memory);
  CHECK(cache.stats().compiles == 1);
  REQUIRE(first->cubin().size() > 4);
  CHECK(first->cubin().substr(1, 3) == "ELF");
  auto third = load_decode_kernel(plan_decode_kernel(spec_of(nullptr, &wide, DType::BF16, 128, 32, "sm_90")), cache);
  CHECK(third->source() == CacheSource::Compiled);
  CHECK(cache.stats().compiles == 2);
}

TEST_CASE("every decode configuration compiles without register spills", "[cuda][decode][ptxas]") {
  if (!test::nvrtc_or_warn()) return;
  const Mod causal = causal_mod(), alibi = alibi_mod(16);
  std::ofstream report;
  if (const char* path = std::getenv("ATTNC_PTXAS_REPORT")) report.open(path, std::ios::app);
  struct Config {
    DType dtype;
    int head_dim, rows;
    bool alibi;
  };
  std::vector<Config> configs;
  for (int head_dim : {64, 128, 256}) {
    for (int rows : {16, 32, 64}) {
      for (bool with_alibi : {false, true}) configs.push_back({DType::BF16, head_dim, rows, with_alibi});
    }
  }
  configs.push_back({DType::F16, 128, 16, true});
  configs.push_back({DType::F16, 256, 64, true});
  // Every distinct kernel, compiled in parallel (NVRTC is thread-safe; ptxas dominates).
  std::vector<DecodePlan> plans;
  for (const char* arch : {"sm_80", "sm_90"}) {
    for (const Config& c : configs) {
      DecodePlan plan =
          plan_decode_kernel(spec_of(c.alibi ? &alibi : nullptr, &causal, c.dtype, c.head_dim, c.rows, arch));
      bool seen = false;
      for (const DecodePlan& other : plans) seen = seen || other.key == plan.key;
      if (!seen) plans.push_back(std::move(plan));  // otherwise another row count's kernel
    }
  }
  std::vector<std::future<cuda::CompiledKernel>> compiled;
  for (const DecodePlan& plan : plans) {
    compiled.push_back(std::async(std::launch::async, [&plan] {
      cuda::NvrtcOptions options = decode_nvrtc_options(plan.spec);
      options.extra = {"--ptxas-options=-v"};
      return cuda::Nvrtc::get().compile(decode_program(plan, decode_mods(plan.spec)), options);
    }));
  }
  for (size_t i = 0; i < plans.size(); ++i) {
    const DecodePlan& plan = plans[i];
    const DecodeSpec& c = plan.spec;
    const std::string log = compiled[i].get().log;
    const char* mods = c.score ? "alibi+causal" : "causal";
    CAPTURE(c.arch, dtype_name(c.dtype), c.head_dim, to_string(plan.tile), mods);
    INFO(log);
    // ptxas reports each entry point: the split kernel and the merge.
    const std::regex usage(
        R"(Compiling entry function '(\w+)'[\s\S]*?(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads[\s\S]*?Used (\d+) registers)");
    int entries = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), usage); it != std::sregex_iterator(); ++it) {
      const std::smatch& m = *it;
      ++entries;
      CAPTURE(m[1].str());
      CHECK(m[3] == "0");
      CHECK(m[4] == "0");
      if (report.is_open()) {
        report << c.arch << " " << dtype_name(c.dtype) << " d" << c.head_dim << " " << to_string(plan.tile) << " "
               << mods << " " << m[1] << " regs=" << m[5] << " stack=" << m[2] << " spill_st=" << m[3]
               << " spill_ld=" << m[4] << " smem=" << decode_shared_bytes(plan.tile, c.head_dim, c.head_dim) << "\n";
      }
    }
    CHECK(entries == 2);
  }
}

TEST_CASE("decode launch arguments are checked with clear messages", "[cuda][decode][launch]") {
  const Mod mask = causal_mod();
  auto kernel = fake_kernel(nullptr, &mask, 64, 4);
  const Tensor q = fake_cuda(DType::BF16, {2, 8, 2, 64});
  const Tensor k = fake_cuda(DType::BF16, {2, 4, 90, 64});
  const Tensor v = fake_cuda(DType::BF16, {2, 4, 90, 64});
  const Tensor out = fake_cuda(DType::BF16, {2, 8, 2, 64});
  std::vector<KvBatchRow> rows = {{0, 90, 88}, {1, 90, 88}};
  auto pack = [&](const Tensor& q_, const KvSource& kv, const std::vector<KvBatchRow>& r, const DecodeLaunch& how,
                  int splits = 1, const Mod* m = nullptr) {
    AttentionOptions options;
    options.mask_mod = m ? m : &mask;
    return kernel->pack_arguments(q_, kv, r, out, nullptr, options, how, splits, nullptr);
  };
  KvSource kv;
  kv.k = k;
  kv.v = v;
  CHECK_NOTHROW(pack(q, kv, rows, {}));
  CHECK_THROWS_WITH(pack(q, kv, rows, {}, 3), Catch::Contains("3 splits need a 16-byte aligned workspace of"));
  DecodeLaunch with_workspace;
  with_workspace.workspace = reinterpret_cast<void*>(1 << 20);
  with_workspace.workspace_size = DecodeKernel::workspace_bytes(2, 8, 2, 3, 64);
  CHECK(with_workspace.workspace_size == 2 * 8 * 2 * 3 * (64 + 1) * 4);
  CHECK_NOTHROW(pack(q, kv, rows, with_workspace, 3));
  std::vector<KvBatchRow> ragged = {{0, 90, 88}, {1, 40, 38}};
  CHECK_THROWS_WITH(pack(q, kv, ragged, {}), Catch::Contains("must be given in device memory"));
  DecodeLaunch on_device;
  on_device.device_rows = reinterpret_cast<void*>(2 << 20);
  CHECK_NOTHROW(pack(q, kv, ragged, on_device));
  KvSource misaligned = kv;
  misaligned.k = fake_cuda(DType::BF16, {2, 4, 90, 64}, {}, 4104);
  CHECK_THROWS_WITH(pack(q, misaligned, rows, {}), Catch::Contains("k must be 16-byte aligned"));
  KvSource strided = kv;
  strided.v = fake_cuda(DType::BF16, {2, 4, 90, 64}, {23044, 5761, 64, 1});
  CHECK_THROWS_WITH(pack(q, strided, rows, {}), Catch::Contains("multiples of 8 elements"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::F16, {2, 8, 2, 64}), kv, rows, {}),
                    Catch::Contains("q must be bf16 (the kernel's dtype)"));
  KvSource wide = kv;
  wide.k = wide.v = fake_cuda(DType::BF16, {2, 4, 90, 128});
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 8, 2, 128}), wide, rows, {}),
                    Catch::Contains("out must have shape [2, 8, 2, 128]"));
  const Mod window = sliding_window_mod(5, true);
  CHECK_THROWS_WITH(pack(q, kv, rows, {}, 1, &window),
                    Catch::Contains("differs from the mask mod the kernel was compiled for"));
  // Paged: the block table lives on the device; the host copy is what the checks read.
  std::vector<int32_t> table = {3, 1, 0, 2};
  KvSource paged;
  paged.k = paged.v = fake_cuda(DType::BF16, {4, 4, 64, 64});
  paged.block_table = fake_cuda(DType::I32, {2, 2});
  paged.page_size = 64;
  paged.host_block_table = table;
  CHECK_NOTHROW(pack(q, paged, {{0, 100, 98}, {1, 128, 126}}, on_device));
  table[3] = 4;
  CHECK_THROWS_WITH(pack(q, paged, {{0, 100, 98}, {1, 128, 126}}, on_device),
                    Catch::Contains("block table row 1 entry 1 is page 4, outside the pool of 4 pages"));
}

TEST_CASE("the decode kernel argument has DecodeParams' layout with the packed mods after it",
          "[cuda][decode][launch]") {
  const Mod score = softcap_mod(7.5f);
  const Mod mask = sliding_window_mod(33, true);
  auto kernel = fake_kernel(&score, &mask, 64, 8, true);
  const Tensor q = fake_cuda(DType::BF16, {2, 8, 2, 64}, {}, 1 << 20);
  KvSource kv;
  kv.k = fake_cuda(DType::BF16, {6, 2, 16, 64}, {}, 2 << 20);
  kv.v = fake_cuda(DType::BF16, {6, 2, 16, 64}, {}, 3 << 20);
  kv.block_table = fake_cuda(DType::I32, {2, 3}, {}, 7 << 20);
  kv.page_size = 16;
  const std::vector<int32_t> table = {5, 4, 3, 2, 1, 0};
  kv.host_block_table = table;
  const Tensor out = fake_cuda(DType::BF16, {2, 8, 2, 64}, {}, 4 << 20);
  const Tensor lse = fake_cuda(DType::F32, {2, 8, 2}, {}, 5 << 20);
  const std::vector<KvBatchRow> rows = {{1, 40, 38}, {0, 17, 15}};
  DecodeLaunch how;
  how.device_rows = reinterpret_cast<void*>(8 << 20);
  how.workspace = reinterpret_cast<void*>(9 << 20);
  how.workspace_size = 1 << 20;
  AttentionOptions options;
  options.score_mod = &score;
  options.mask_mod = &mask;
  options.scale = 0.25f;
  options.check_bounds = true;
  void* bounds = reinterpret_cast<void*>(6 << 20);
  const std::vector<unsigned char> bytes = kernel->pack_arguments(q, kv, rows, out, &lse, options, how, 3, bounds);
  struct Mods2 {
    float cap;
    int32_t window;
  };
  using Expected = attnc_decode::DecodeParams<Mods2>;
  REQUIRE(bytes.size() == sizeof(Expected));
  Expected p;
  std::memcpy(static_cast<void*>(&p), bytes.data(), bytes.size());
  CHECK(p.q == q.data());
  CHECK(p.k == kv.k.data());
  CHECK(p.lse == lse.data());
  CHECK(p.k_page_stride == 2 * 16 * 64);
  CHECK(p.k_head_stride == 16 * 64);
  CHECK(p.block_table == kv.block_table.data());
  CHECK(p.block_table_stride == 3);
  CHECK(p.page_shift == 4);
  CHECK(p.rows == how.device_rows);
  CHECK(p.num_heads == 8);
  CHECK(p.num_kv_heads == 2);
  CHECK(p.q_len == 2);
  CHECK(p.num_splits == 3);
  CHECK(p.row_chunks == 1);  // 8 rows per KV head in one 16-row CTA
  CHECK(p.scale == 0.25f);
  CHECK(p.partial_out == how.workspace);
  CHECK(p.partial_lse == static_cast<float*>(how.workspace) + 2 * 8 * 2 * 3 * 64);
  CHECK(p.mods.cap == 7.5f);
  CHECK(p.mods.window == 33);
  CHECK(p.bounds == bounds);
}

// ---------------------------------------------------------------------------------------------
// On the GPU.

namespace {

struct DeviceCase {
  Tensor q, k, v, table;
  std::vector<int32_t> host_table;
};

void check_on_gpu(const DecodeCase& c, const Mod* score, const Mod* mask) {
  CAPTURE(c.batch, c.heads, c.kv_heads, c.q_len, c.page_size, c.kv_lens, c.q_offsets, dtype_name(c.dtype));
  const DecodeInputs in = make_inputs(c);
  KvSource kv;
  kv.k = cuda::to_device(in.k);
  kv.v = cuda::to_device(in.v);
  std::vector<int32_t> host_table;
  if (c.page_size > 0) {
    kv.block_table = cuda::to_device(in.block_table);
    kv.page_size = c.page_size;
    const int32_t* t = static_cast<const int32_t*>(in.block_table.data());
    host_table.assign(t, t + in.block_table.numel());
    kv.host_block_table = host_table;
  }
  std::vector<KvBatchRow> rows;
  for (int b = 0; b < c.batch; ++b) rows.push_back({in.kv_row[b], c.kv_lens[b], c.q_offsets[b]});
  std::optional<Mod> score_dev, mask_dev;
  if (score) score_dev = test::on_device(*score);
  if (mask) mask_dev = test::on_device(*mask);
  AttentionOptions device_options;
  device_options.score_mod = score_dev ? &*score_dev : nullptr;
  device_options.mask_mod = mask_dev ? &*mask_dev : nullptr;
  const Tensor out = cuda::empty_device_tensor(c.dtype, {c.batch, c.heads, c.q_len, c.head_dim});
  cuda::fill_device_bytes(out, 0xFF);
  Tensor lse;
  decode_attention_cuda(cuda::to_device(in.q), kv, rows, out, device_options, &lse);
  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  Tensor ref, ref_lse;
  reference(c, in, options, ref, ref_lse);
  const double error = attnc_test::relative_error(cuda::to_host(out), ref);
  CAPTURE(error);
  CHECK(error < (c.dtype == DType::BF16 ? 1e-2 : 2e-3));
  CHECK(attnc_test::lse_mismatches(cuda::to_host(lse), ref_lse) == 0);
}

DecodeCase gpu_case(int heads, int kv_heads, int q_len, std::vector<int32_t> lens, int page_size, DType dtype,
                    int head_dim) {
  DecodeCase c;
  c.batch = static_cast<int>(lens.size());
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.q_len = q_len;
  c.kv_lens = lens;
  for (int32_t len : lens) c.q_offsets.push_back(std::max(0, len - q_len));
  c.page_size = page_size;
  c.dtype = dtype;
  c.head_dim = head_dim;
  return c;
}

Tensor gpu_document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < len / 3 + b ? 0 : i < 2 * len / 3 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("decode matches the reference on the GPU for every built-in mod, contiguous and paged",
          "[cuda][gpu][decode]") {
  if (!test::gpu_or_warn()) return;
  const int max_len = 1600;
  const Mod causal = causal_mod();
  std::vector<std::pair<std::optional<Mod>, std::optional<Mod>>> mods = {
      {std::nullopt, std::nullopt},
      {std::nullopt, sliding_window_mod(300, true)},
      {alibi_mod(8), causal},
      {std::nullopt, causal},
      {std::nullopt, causal_bottom_right_mod()},
      {std::nullopt, sliding_window_mod(200, false)},
      {std::nullopt, prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{700, 9, 1}))},
      {std::nullopt, document_mask_mod(gpu_document_ids(3, max_len))},
      {softcap_mod(4.0f), std::nullopt},
      {additive_bias_mod(test::normal_tensor(5, DType::F32, {1, 8, max_len, max_len})), std::nullopt},
      {compose_score_mods({alibi_mod(8), softcap_mod(4.0f)}),
       and_masks({causal, document_mask_mod(gpu_document_ids(3, max_len))})},
  };
  // Every mod at bf16 / head dim 128; the first three (none, window, ALiBi + causal) also in fp16
  // and at head dims 64 and 256.
  struct Config {
    DType dtype;
    int head_dim;
    size_t mods;
  };
  const std::vector<Config> configs = {
      {DType::BF16, 128, mods.size()}, {DType::F16, 128, 3}, {DType::BF16, 64, 3}, {DType::BF16, 256, 3}};
  // Compile every kernel the loop below asks for in parallel first (the rows pick the layout).
  const std::string arch = cuda::CudaDriver::get().device_info(0).arch();
  std::vector<std::future<std::shared_ptr<const DecodeKernel>>> warm;
  for (const Config& c : configs) {
    for (size_t i = 0; i < c.mods; ++i) {
      for (int rows : {4, 128}) {
        const DecodeSpec spec = spec_of(mods[i].first ? &*mods[i].first : nullptr,
                                        mods[i].second ? &*mods[i].second : nullptr, c.dtype, c.head_dim, rows, arch);
        warm.push_back(std::async(std::launch::async, [spec] {
          return load_decode_kernel(plan_decode_kernel(spec), cuda::default_kernel_cache());
        }));
      }
    }
  }
  for (auto& kernel : warm) kernel.get();
  for (const Config& c : configs) {
    for (size_t i = 0; i < c.mods; ++i) {
      const Mod* s = mods[i].first ? &*mods[i].first : nullptr;
      const Mod* m = mods[i].second ? &*mods[i].second : nullptr;
      for (int page : {0, 16, 128}) {
        check_on_gpu(gpu_case(8, 2, 1, {1500, 700, 0}, page, c.dtype, c.head_dim), s, m);  // 4 rows per KV head
        check_on_gpu(gpu_case(8, 1, 16, {1200, 77, 1}, page, c.dtype, c.head_dim), s, m);  // 128 rows
      }
    }
  }
}

TEST_CASE("attention() runs short CUDA queries through the decode family", "[cuda][gpu][decode]") {
  if (!test::gpu_or_warn()) return;
  const Tensor q = test::normal_tensor(3, DType::BF16, {2, 32, 1, 128});
  const Tensor k = test::normal_tensor(4, DType::BF16, {2, 8, 5000, 128});
  const Tensor v = test::normal_tensor(5, DType::BF16, {2, 8, 5000, 128});
  const Mod window = sliding_window_mod(1000, true);
  AttentionOptions options;
  options.mask_mod = &window;
  options.q_offset = 4999;
  Tensor out = cuda::empty_device_tensor(DType::BF16, {2, 32, 1, 128});
  Tensor lse;
  const Mod window_dev = test::on_device(window);
  AttentionOptions device_options = options;
  device_options.mask_mod = &window_dev;
  attention(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), out, device_options, &lse);
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  CHECK(attnc_test::relative_error(cuda::to_host(out), ref) < 1e-2);
  CHECK(attnc_test::lse_mismatches(cuda::to_host(lse), ref_lse) == 0);
}

TEST_CASE("decode on the GPU raises out-of-range mod indices with bounds checking", "[cuda][gpu][decode]") {
  if (!test::gpu_or_warn()) return;
  const Tensor q = test::normal_tensor(3, DType::BF16, {1, 8, 1, 64});
  const Tensor k = test::normal_tensor(4, DType::BF16, {1, 2, 100, 64});
  // Five documents over 50 ids for 100 positions: no tile is EMPTY or FULL, so the mask runs and
  // reads ids[0, 99].
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(i / 10);
  const Mod doc = test::on_device(document_mask_mod(Tensor::from_vector(ids, {1, 50})));
  AttentionOptions options;
  options.mask_mod = &doc;
  options.q_offset = 99;
  options.check_bounds = true;
  Tensor out = cuda::empty_device_tensor(DType::BF16, {1, 8, 1, 64});
  CHECK_THROWS_WITH(attention(cuda::to_device(q), cuda::to_device(k), cuda::to_device(k), out, options),
                    Catch::Contains("decode_attention (cuda)") &&
                        Catch::Contains("is out of range for dimension 1 of parameter 'ids' (extent 50)"));
}
