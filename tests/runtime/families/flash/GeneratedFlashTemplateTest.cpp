// The flash-attention template (runtime/families/flash/flash_attention.cuh) run under the host emulation
// (runtime/emulation/HostEmulation.h) with GENERATED mod code: compiler/CudaCodegen's output for every
// built-in mod and a composition, written at build time by tests/generators/GenerateTestMods.cpp,
// with arguments packed by runtime/cuda/PackModParams.h exactly as a launch packs them. Compared
// with the reference attention. Small shapes and tiles keep the emulation quick.

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "attnc_test_mods.cuh"
#include "compiler/DType.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash/flash_attention.cuh"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
namespace emu = attnc::host_emulation;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

struct Shape {
  int batch = 1, heads = 4, kv_heads = 2, q_len = 45, kv_len = 83;
};

std::vector<ir::ParamBinding> host_bindings(const Mod* mod) {
  std::vector<ir::ParamBinding> out;
  if (mod == nullptr) return out;
  ir::Environment env;
  mod->bind_into(env);
  return env.params;
}

// Runs the template with the generated traits `Gen` on random inputs and compares it with the
// reference evaluating the same (bound) mods from their IR.
template <class Gen, class Elem, int D, int BM, int BN, int W>
void check_generated(const Shape& s, const Mod* score, const Mod* mask, uint32_t seed = 7) {
  const DType dtype = std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
  CAPTURE(dtype_name(dtype), D, BM, BN, W, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len);
  // The mods bound here must be the ones the code was generated from.
  REQUIRE(std::string(Gen::kScoreSignature) == (score ? score->signature().hex() : "none"));
  REQUIRE(std::string(Gen::kMaskSignature) == (mask ? mask->signature().hex() : "none"));

  const Tensor q = normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, D});
  const Tensor k = normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, D});
  const Tensor v = normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, D});
  Tensor out = Tensor::empty(dtype, {s.batch, s.heads, s.q_len, D});
  Tensor lse = Tensor::empty(DType::F32, {s.batch, s.heads, s.q_len});
  std::memset(out.data(), 0xFF, static_cast<size_t>(out.numel()) * 2);  // NaN: unwritten elements fail
  std::memset(lse.data(), 0xFF, static_cast<size_t>(lse.numel()) * 4);

  // The generated ModParams, filled as a launch fills it (tensor pointers are host pointers here).
  ir::CudaModSource layout =
      ir::generate_cuda_mods(score ? &score->def() : nullptr, score ? score->storage_types() : std::vector<DType>{},
                             mask ? &mask->def() : nullptr, mask ? mask->storage_types() : std::vector<DType>{});
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, host_bindings(score), host_bindings(mask));
  attnc_flash::FlashParams<typename Gen::Params> p{};
  std::memcpy(static_cast<void*>(&p.mods), bytes.data(), bytes.size());
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = out.data();
  p.lse = static_cast<float*>(lse.data());
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  p.lse_batch_stride = lse.stride(0), p.lse_head_stride = lse.stride(1), p.lse_row_stride = 1;
  p.batch = s.batch, p.num_heads = s.heads, p.num_kv_heads = s.kv_heads, p.q_len = s.q_len, p.kv_len = s.kv_len;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.bounds = nullptr;
  using Kernel = attnc_flash::FlashForward<Gen, Elem, D, D, BM, BN, W>;
  const emu::Dim3 grid{static_cast<uint32_t>((s.q_len + BM - 1) / BM), static_cast<uint32_t>(s.heads),
                       static_cast<uint32_t>(s.batch)};
  emu::launch(grid, emu::Dim3{W * 32, 1, 1}, Kernel::kSharedBytes, [&p] { Kernel::run(p); });

  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  const double error = attnc_test::relative_error(out, ref);
  CAPTURE(error);
  CHECK(error < (dtype == DType::BF16 ? 1e-2 : 1e-3));
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

// Small tiles (BLOCK_M 32, BLOCK_N 16, 2 warps) so the odd lengths cross several tiles each way.
template <class Gen>
void check_both_dtypes(const Shape& s, const Mod* score, const Mod* mask) {
  check_generated<Gen, bf16_t, 32, 32, 16, 2>(s, score, mask);
  check_generated<Gen, f16_t, 32, 32, 16, 2>(s, score, mask);
}

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < 13 + b ? 0 : i < 40 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("generated mask mods run in the emulated template and match the reference", "[runtime][flash][generated]") {
  const Shape s;
  SECTION("causal") {
    const Mod m = causal_mod();
    check_both_dtypes<Gen_causal>(s, nullptr, &m);
  }
  SECTION("causal aligned to the bottom right, with rows that keep nothing") {
    const Mod m = causal_bottom_right_mod();
    check_both_dtypes<Gen_causal_bottom_right>(Shape{1, 2, 2, 70, 50}, nullptr, &m);
    check_both_dtypes<Gen_causal_bottom_right>(s, nullptr, &m);
  }
  SECTION("causal sliding window") {
    const Mod m = sliding_window_mod(19, true);
    check_both_dtypes<Gen_window_causal>(s, nullptr, &m);
  }
  SECTION("symmetric sliding window") {
    const Mod m = sliding_window_mod(11, false);
    check_both_dtypes<Gen_window_symmetric>(s, nullptr, &m);
  }
  SECTION("prefix LM") {
    const Mod m = prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{17, 3}));
    check_both_dtypes<Gen_prefix_lm>(Shape{2, 2, 1, 45, 45}, nullptr, &m);
  }
  SECTION("document mask") {
    const Mod m = document_mask_mod(document_ids(2, 61));
    check_both_dtypes<Gen_document>(Shape{2, 2, 2, 61, 61}, nullptr, &m);
  }
}

TEST_CASE("generated score mods run in the emulated template and match the reference", "[runtime][flash][generated]") {
  const Shape s;
  SECTION("ALiBi") {
    const Mod m = alibi_mod(4);
    check_both_dtypes<Gen_alibi>(s, &m, nullptr);
  }
  SECTION("additive bias, broadcast over batch and heads") {
    const Mod m = additive_bias_mod(normal_tensor(99, DType::F32, {1, 1, s.q_len, s.kv_len}));
    check_both_dtypes<Gen_additive_bias>(s, &m, nullptr);
  }
  SECTION("softcap") {
    const Mod m = softcap_mod(5.0f);
    check_both_dtypes<Gen_softcap>(s, &m, nullptr);
  }
}

TEST_CASE("a generated composition runs in the emulated template at the production tiling",
          "[runtime][flash][generated]") {
  const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
  const Mod mask = and_masks({causal_mod(), document_mask_mod(document_ids(1, 150))});
  check_both_dtypes<Gen_composition>(Shape{1, 4, 2, 150, 150}, &score, &mask);
  // TileConfig's choice for D = 64 on every architecture: 128 x 64 tiles, 8 warps.
  check_generated<Gen_composition, bf16_t, 64, 128, 64, 8>(Shape{1, 4, 4, 150, 150}, &score, &mask);
}
