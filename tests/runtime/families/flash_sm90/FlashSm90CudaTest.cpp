// The Hopper family's launch side (runtime/families/flash_sm90/FlashSm90Cuda.h).
//
// Without a GPU: the launch checks, the tensor-map requests, and the exact bytes a launch packs,
// run through the emulated template (tensors that claim to be on the device but live in host memory,
// tensor maps from the emulation's encoder), against the reference: the packing, the maps and the
// tile map a launch passes are what the template reads.
// With a GPU (sm_90a): every built-in mod, both dtypes, head dims 64, 128 and 256, GQA / MQA, odd
// lengths, q_len != kv_len, q_offset, against the reference; attention() choosing the family; a tile
// map built once and reused, and refused for another call. Elsewhere they say so in one WARN line.

#include "runtime/families/flash_sm90/FlashSm90Cuda.h"

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "attnc_test_mods.cuh"
#include "runtime/Attention.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash_sm90/flash_attention_sm90.cuh"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/tilemap/TileMapCpu.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::flash_sm90;
namespace emu = attnc::host_emulation;

namespace {

KernelCacheOptions memory_only() {
  KernelCacheOptions options;
  options.use_disk = false;
  return options;
}

Tensor fake_cuda(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {}, uintptr_t address = 4096) {
  return Tensor::from_data(reinterpret_cast<void*>(address), dtype, std::move(shape), std::move(strides), Device::Cuda);
}

// The same memory as a host tensor, claiming to be on the device (for packing without a GPU).
Tensor as_cuda(const Tensor& host) {
  return Tensor::from_data(host.data(), host.dtype(), host.shape(), host.strides(), Device::Cuda);
}

// A copy of `mod` whose tensor arguments claim to be on the device (same host memory).
Mod as_cuda_mod(const Mod& mod) {
  Mod copy = mod;
  for (size_t i = 0; i < mod.def().params.size(); ++i) {
    if (const auto* t = std::get_if<Tensor>(&*mod.argument(i))) copy.bind(mod.def().params[i].name, as_cuda(*t));
  }
  return copy;
}

FlashSm90Spec spec_for(const Mod* score, const Mod* mask, DType dtype, int head_dim, bool check_bounds = false) {
  FlashSm90Spec spec;
  spec.score = ModSpec::of(score);
  spec.mask = ModSpec::of(mask);
  spec.dtype = dtype;
  spec.head_dim = spec.head_dim_v = head_dim;
  spec.check_bounds = check_bounds;
  return spec;
}

std::shared_ptr<const FlashSm90Kernel> fake_kernel(const Mod* score, const Mod* mask, int head_dim,
                                                   DType dtype = DType::BF16) {
  const FlashSm90Plan plan = plan_flash_sm90_kernel(spec_for(score, mask, dtype, head_dim));
  auto binary = std::make_shared<const CachedKernel>(CachedKernel{"cubin", "entry=attnc_flash_sm90_forward\n"});
  return std::make_shared<const FlashSm90Kernel>(plan, plan.key.with("nvrtc", "test"), CacheSource::Compiled, binary,
                                                 flash_sm90_mods(plan.spec), 0);
}

// The emulation's tensor maps (what the driver makes on a GPU).
void emulated_encoder(void* map, const TensorMapRequest& r) {
  emu::encode_tensor_map(map, r.global, 2, 4, r.dims, r.strides, r.box, emu::TensorMapSwizzle::B128);
}

}  // namespace

TEST_CASE("Hopper launch arguments are checked with clear messages", "[cuda][flash_sm90][launch]") {
  const Mod mask = causal_mod();
  auto kernel = fake_kernel(nullptr, &mask, 64);
  const Tensor q = fake_cuda(DType::BF16, {2, 4, 100, 64});
  const Tensor k = fake_cuda(DType::BF16, {2, 2, 90, 64});
  const Tensor out = fake_cuda(DType::BF16, {2, 4, 100, 64});
  auto pack = [&](const Tensor& q_, const Tensor& k_, const Tensor& out_, const Mod* m) {
    AttentionOptions options;
    options.mask_mod = m;
    return kernel->pack_arguments(q_, k_, k_, out_, nullptr, options, attnc_abi::TileMapView{}, nullptr,
                                  [](void*, const TensorMapRequest&) {});
  };
  CHECK_NOTHROW(pack(q, k, out, &mask));
  CHECK_THROWS_WITH(pack(q, k, fake_cuda(DType::BF16, {2, 4, 100, 64}, {}, 4104), &mask),
                    Catch::Contains("out must be 16-byte aligned"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 4, 100, 64}, {25600, 64, 256, 2}), k, out, &mask),
                    Catch::Contains("last (head) dimension contiguous"));
  CHECK_THROWS_WITH(pack(q, fake_cuda(DType::BF16, {2, 2, 90, 64}, {11540, 0, 64, 1}), out, &mask),
                    Catch::Contains("positive strides"));
  CHECK_THROWS_WITH(pack(fake_cuda(DType::BF16, {2, 4, 100, 128}), fake_cuda(DType::BF16, {2, 2, 90, 128}),
                         fake_cuda(DType::BF16, {2, 4, 100, 128}), &mask),
                    Catch::Contains("compiled for head dims 64/64"));
  CHECK_THROWS_WITH(pack(q, fake_cuda(DType::F16, {2, 2, 90, 64}), out, &mask),
                    Catch::Contains("k must be bf16 (the kernel's dtype)"));
  CHECK_THROWS_WITH(pack(q, k, out, nullptr), Catch::Contains("compiled with a mask mod"));
  CHECK(flash_sm90_accepts(q, k, k, out));
  CHECK_FALSE(flash_sm90_accepts(fake_cuda(DType::BF16, {2, 4, 100, 96}), fake_cuda(DType::BF16, {2, 2, 90, 96}),
                                 fake_cuda(DType::BF16, {2, 2, 90, 96}), fake_cuda(DType::BF16, {2, 4, 100, 96})));
  CHECK_FALSE(flash_sm90_accepts(q, fake_cuda(DType::BF16, {2, 2, 90, 64}, {11540, 0, 64, 1}), k, out));
}

TEST_CASE("tensor-map requests describe (d, row, head, batch) with byte strides", "[cuda][flash_sm90][launch]") {
  // (B, H, S, D) contiguous.
  const TensorMapRequest a = attention_tensor_map(fake_cuda(DType::BF16, {2, 3, 100, 128}), 80);
  CHECK(std::vector<uint64_t>(a.dims, a.dims + 4) == std::vector<uint64_t>{128, 100, 3, 2});
  CHECK(std::vector<uint64_t>(a.strides, a.strides + 3) == std::vector<uint64_t>{256, 25600, 76800});
  CHECK(std::vector<uint32_t>(a.box, a.box + 4) == std::vector<uint32_t>{64, 80, 1, 1});
  // A (B, S, H, D) tensor viewed as (B, H, S, D): the head stride is below the row stride.
  const TensorMapRequest b = attention_tensor_map(fake_cuda(DType::F16, {2, 8, 50, 64}, {25600, 64, 512, 1}), 64);
  CHECK(std::vector<uint64_t>(b.strides, b.strides + 3) == std::vector<uint64_t>{1024, 128, 51200});
  // Extents of 1 take the span inside them, whatever their strides say.
  const TensorMapRequest c = attention_tensor_map(fake_cuda(DType::BF16, {1, 1, 7, 64}, {0, 3, 64, 1}), 64);
  CHECK(std::vector<uint64_t>(c.strides, c.strides + 3) == std::vector<uint64_t>{128, 896, 896});
}

TEST_CASE("the bytes a Hopper launch packs run in the emulated template and match the reference",
          "[cuda][flash_sm90][launch][emulation]") {
  // Host memory posing as device memory: the launch's packing, tensor maps and tile map are read by
  // the template as a GPU would read them.
  const int B = 1, H = 4, Hkv = 2, S = 150, Skv = 170, D = 64;
  const Tensor q = test::normal_tensor(1, DType::BF16, {B, H, S, D});
  const Tensor k = test::normal_tensor(2, DType::BF16, {B, Hkv, Skv, D});
  const Tensor v = test::normal_tensor(3, DType::BF16, {B, Hkv, Skv, D});
  Tensor out = Tensor::empty(DType::BF16, {B, H, S, D});
  Tensor lse = Tensor::empty(DType::F32, {B, H, S});
  std::memset(out.data(), 0xFF, size_t(out.numel()) * 2);
  std::memset(lse.data(), 0xFF, size_t(lse.numel()) * 4);
  std::vector<int32_t> ids_host;
  for (int i = 0; i < 300; ++i) ids_host.push_back(i < 60 ? 0 : i < 170 ? 1 : 2);
  const Tensor ids = Tensor::from_vector(ids_host, {1, 300});
  const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
  const Mod mask = and_masks({causal_mod(), document_mask_mod(ids)});
  REQUIRE(score.signature().hex() == Gen_composition::kScoreSignature);
  REQUIRE(mask.signature().hex() == Gen_composition::kMaskSignature);

  auto kernel = fake_kernel(&score, &mask, D);
  const Mod score_dev = as_cuda_mod(score), mask_dev = as_cuda_mod(mask);
  AttentionOptions options;
  options.score_mod = &score_dev;
  options.mask_mod = &mask_dev;
  const TileMap map = build_tile_map_cpu(mask, kernel->tile_map_shape(q, k, options));
  const Tensor lse_dev = as_cuda(lse);
  const std::vector<unsigned char> bytes = kernel->pack_arguments(
      as_cuda(q), as_cuda(k), as_cuda(v), as_cuda(out), &lse_dev, options, map.view(), nullptr, emulated_encoder);
  using Params = attnc_flash_sm90::FlashSm90Params<Gen_composition::Params>;
  REQUIRE(bytes.size() == sizeof(Params));
  auto p = std::make_unique<Params>();
  std::memcpy(static_cast<void*>(p.get()), bytes.data(), bytes.size());
  CHECK(p->q_len == S);
  CHECK(p->kv_len == Skv);
  CHECK(p->num_kv_heads == Hkv);
  CHECK(p->tile_map.counts == map.view().counts);
  CHECK(p->bounds == nullptr);
  REQUIRE(kernel->tiles() == Sm90Tiles{128, 3});
  using Kernel = attnc_flash_sm90::FlashForwardSm90<Gen_composition, attnc_dev::bf16_t, 64, 64, 128, 3>;
  REQUIRE(size_t(Kernel::kSharedBytes) == kernel->shared_bytes());
  const Params* params = p.get();
  emu::launch(emu::Dim3{uint32_t((S + 127) / 128), uint32_t(H), uint32_t(B)}, emu::Dim3{384, 1, 1},
              Kernel::kSharedBytes, [params] { Kernel::run(*params); });

  AttentionOptions host_options;
  host_options.score_mod = &score;
  host_options.mask_mod = &mask;
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, host_options, &ref_lse);
  const double error = attnc_test::relative_error(out, ref);
  CAPTURE(error);
  CHECK(error < 1e-2);
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

// ---------------------------------------------------------------------------------------------
// On an H100 / H200, against the reference.

namespace {

bool hopper_or_warn() {
  if (!test::gpu_or_warn()) return false;
  if (cuda::CudaDriver::get().device_info(0).arch() != "sm_90a") {
    WARN("the GPU is not a compute capability 9.0 device: the Hopper tests did not run");
    return false;
  }
  return true;
}

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

std::vector<ModPair> all_mods(int max_len) {
  const Mod causal = causal_mod();
  const Tensor bias = test::normal_tensor(5, DType::F32, {1, 4, max_len, max_len});
  std::vector<ModPair> pairs = {
      {"none", std::nullopt, std::nullopt},
      {"causal", std::nullopt, causal},
      {"causal_bottom_right", std::nullopt, causal_bottom_right_mod()},
      {"sliding_window causal 37", std::nullopt, sliding_window_mod(37, true)},
      {"sliding_window symmetric 21", std::nullopt, sliding_window_mod(21, false)},
      {"prefix_lm", std::nullopt, prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{40, 7}))},
      {"document", std::nullopt, document_mask_mod(document_ids(2, max_len))},
      {"document & causal", std::nullopt, and_masks({document_mask_mod(document_ids(2, max_len)), causal})},
  };
  for (const auto& [name, score] : std::vector<std::pair<std::string, Mod>>{
           {"alibi", alibi_mod(4)},
           {"softcap 4", softcap_mod(4.0f)},
           {"additive_bias", additive_bias_mod(bias)},
           {"alibi+softcap", compose_score_mods({alibi_mod(4), softcap_mod(4.0f)})}}) {
    pairs.push_back({name, score, std::nullopt});
    pairs.push_back({name + " + causal", score, causal});
  }
  return pairs;
}

}  // namespace

TEST_CASE("every built-in mod matches the reference in the Hopper kernel on the GPU", "[cuda][gpu][flash_sm90]") {
  if (!hopper_or_warn()) return;
  struct GpuShape {
    int batch, heads, kv_heads, q_len, kv_len, q_offset;
  };
  const std::vector<GpuShape> shapes = {
      {2, 4, 4, 256, 256, 0},   // whole tiles
      {2, 4, 2, 77, 333, 0},    // odd lengths, q_len < kv_len, GQA
      {2, 4, 1, 300, 61, 0},    // q_len > kv_len (bottom-right causal leaves rows empty), MQA
      {2, 4, 4, 1, 200, 0},     // one query row
      {2, 4, 2, 70, 333, 200},  // a suffix of queries at q_offset 200
  };
  const std::vector<ModPair> pairs = all_mods(540);
  KernelCache cache(memory_only());
  for (DType dtype : {DType::BF16, DType::F16}) {
    for (int head_dim : {64, 128, 256}) {
      for (size_t m = 0; m < pairs.size(); ++m) {
        const ModPair& pair = pairs[m];
        const Mod* score = pair.score ? &*pair.score : nullptr;
        const Mod* mask = pair.mask ? &*pair.mask : nullptr;
        auto kernel = load_flash_sm90_kernel(plan_flash_sm90_kernel(spec_for(score, mask, dtype, head_dim)), cache);
        std::optional<Mod> score_dev, mask_dev;
        if (score) score_dev = test::on_device(*score);
        if (mask) mask_dev = test::on_device(*mask);
        for (const GpuShape& s : shapes) {
          CAPTURE(pair.name, dtype_name(dtype), head_dim, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, s.q_offset);
          const uint32_t seed = uint32_t(m * 100 + head_dim + s.q_len);
          const Tensor q = test::normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, head_dim});
          const Tensor k = test::normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim});
          const Tensor v = test::normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim});
          const Tensor dout = cuda::empty_device_tensor(dtype, {s.batch, s.heads, s.q_len, head_dim});
          const Tensor dlse = cuda::empty_device_tensor(DType::F32, {s.batch, s.heads, s.q_len});
          cuda::fill_device_bytes(dout, 0xFF);
          cuda::fill_device_bytes(dlse, 0xFF);
          AttentionOptions device_options;
          device_options.score_mod = score_dev ? &*score_dev : nullptr;
          device_options.mask_mod = mask_dev ? &*mask_dev : nullptr;
          device_options.q_offset = s.q_offset;
          kernel->launch(cuda::to_device(q), cuda::to_device(k), cuda::to_device(v), dout, &dlse, device_options);
          cuda::CudaDriver::get().synchronize();
          AttentionOptions options;
          options.score_mod = score;
          options.mask_mod = mask;
          options.q_offset = s.q_offset;
          Tensor ref_lse;
          const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
          const double error = attnc_test::relative_error(cuda::to_host(dout), ref);
          CAPTURE(error);
          CHECK(error < (dtype == DType::BF16 ? 1e-2 : 1e-3));
          CHECK(attnc_test::lse_mismatches(cuda::to_host(dlse), ref_lse) == 0);
        }
      }
    }
  }
}

TEST_CASE("attention() takes the Hopper family and reuses a tile map built once", "[cuda][gpu][flash_sm90]") {
  if (!hopper_or_warn()) return;
  const Tensor q = test::normal_tensor(3, DType::BF16, {1, 2, 500, 128});
  const Tensor k = test::normal_tensor(4, DType::BF16, {1, 2, 500, 128});
  const Tensor v = test::normal_tensor(5, DType::BF16, {1, 2, 500, 128});
  const Mod doc = document_mask_mod(document_ids(1, 500));
  const Mod doc_dev = test::on_device(doc);
  AttentionOptions options;
  options.mask_mod = &doc_dev;
  const Tensor dq = cuda::to_device(q), dk = cuda::to_device(k), dv = cuda::to_device(v);
  const std::shared_ptr<const TileMap> map = build_tile_map(dq, dk, dv, options);
  REQUIRE(map != nullptr);
  CHECK(map->device() == Device::Cuda);
  options.tile_map = map.get();
  AttentionOptions host_options;
  host_options.mask_mod = &doc;
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, host_options, &ref_lse);
  for (int call = 0; call < 2; ++call) {
    Tensor out = cuda::empty_device_tensor(DType::BF16, {1, 2, 500, 128});
    Tensor lse;
    attention(dq, dk, dv, out, options, &lse);
    CHECK(attnc_test::relative_error(cuda::to_host(out), ref) < 1e-2);
    CHECK(attnc_test::lse_mismatches(cuda::to_host(lse), ref_lse) == 0);
  }
  // Another q_offset, or other ids, is another map.
  options.q_offset = 1;
  Tensor out = cuda::empty_device_tensor(DType::BF16, {1, 2, 500, 128});
  CHECK_THROWS_WITH(attention(dq, dk, dv, out, options),
                    Catch::Contains("q_offset=0") && Catch::Contains("q_offset=1"));
  options.q_offset = 0;
  const Mod other = test::on_device(document_mask_mod(document_ids(1, 500)));
  options.mask_mod = &other;
  CHECK_THROWS_WITH(attention(dq, dk, dv, out, options), Catch::Contains("another argument for parameter 'ids'"));

  // Bounds checking: ids shorter than the sequence, ending with a document boundary inside the last
  // 128 positions so that the tiles past them are PARTIAL and evaluate the mask (FULL and EMPTY
  // tiles evaluate nothing, as in the flash family).
  std::vector<int32_t> ids(300);
  for (int i = 0; i < 300; ++i) ids[size_t(i)] = i < 280 ? i / 100 : 3;
  const Mod short_ids = test::on_device(document_mask_mod(Tensor::from_vector(ids, {1, 300})));
  AttentionOptions checked;
  checked.mask_mod = &short_ids;
  checked.check_bounds = true;
  CHECK_THROWS_WITH(attention(dq, dk, dv, out, checked),
                    Catch::Contains("out of range for dimension 1 of parameter 'ids' (extent 300)"));
}
