// The CUDA backward template (runtime/families/flash_backward/flash_backward.cuh) run under the host
// emulation (runtime/emulation/HostEmulation.h) with GENERATED mod code and derivatives: the output
// of compiler/CudaCodegen and of FlashBackwardSource's score_derivative_cuda for the built-in mods,
// written at build time by tests/generators/GenerateTestMods.cpp, with arguments packed by
// runtime/cuda/PackModParams.h as a launch packs them. dQ, dK and dV are compared with the fp64
// reference backward (runtime/reference/ReferenceBackward.h) evaluated on the same 16-bit inputs.
//
// Tolerances (relative L2 error of each gradient): the kernel rounds P and dS to the input dtype
// before the tensor-core products (as FlashAttention-2 does), and reads the forward's output O in
// that dtype for delta = rowsum(dO * O); everything else is fp32. One rounding is at most 2^-9
// relative in bf16 and 2^-12 in fp16, and the roundings of a product's terms partly cancel: the
// measured errors of every case below are 2.2e-3 to 2.7e-3 (bf16) and 2.7e-4 to 6.8e-4 (fp16). The
// bounds, 1e-2 and 2e-3, leave about 4x room for other seeds and shapes while still catching a wrong
// layout, mask or derivative (a missing softcap derivative gives 7e-2 to 8e-1, an unevaluated mask
// more).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "attnc_test_mods.cuh"
#include "compiler/DType.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash_backward/flash_backward.cuh"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/AttentionComparison.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
namespace emu = attnc::host_emulation;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

struct Shape {
  int batch = 1, heads = 4, kv_heads = 2, q_len = 45, kv_len = 83;
  int q_offset = 0;  // the mods' q_idx of row 0 (a chunk of queries at a cache position)
};

struct Result {
  Tensor dq, dk, dv;                                    // the kernel's, in the input dtype
  AttentionGradients ref;                               // the reference's (fp32)
  Tensor lse;                                           // the forward's
  uint64_t main_mma_ops = 0;                            // warp mma instructions of the main kernel
  std::vector<std::pair<std::string, Tensor>> dparams;  // the kernel's tensor-parameter gradients
};

std::vector<ir::ParamBinding> host_bindings(const Mod* mod) {
  std::vector<ir::ParamBinding> out;
  if (mod == nullptr) return out;
  ir::Environment env;
  mod->bind_into(env);
  return env.params;
}

template <class T>
void set_strides(const Tensor& t, T& batch, T& head, T& row) {
  batch = t.stride(0), head = t.stride(1), row = t.stride(2);
}

// Runs the three kernels of the template with the generated traits `Gen` on random inputs, and the
// reference backward on the same inputs.
template <class Gen, class Elem, int D, int BM, int BN, int W>
Result run_backward(const Shape& s, const Mod* score, const Mod* mask, uint32_t seed = 11,
                    const Dropout& dropout = {}) {
  const DType dtype = std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
  REQUIRE(std::string(Gen::kScoreSignature) == (score ? score->signature().hex() : "none"));
  REQUIRE(std::string(Gen::kMaskSignature) == (mask ? mask->signature().hex() : "none"));

  const Tensor q = normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, D});
  const Tensor k = normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, D});
  const Tensor v = normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, D});
  const Tensor dout = normal_tensor(seed + 3, dtype, {s.batch, s.heads, s.q_len, D});
  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  options.q_offset = s.q_offset;

  Result r;
  // The forward a training step would have run, rounded to the input dtype like a kernel's output.
  Tensor out = Tensor::empty(dtype, {s.batch, s.heads, s.q_len, D});
  r.lse = Tensor::empty(DType::F32, {s.batch, s.heads, s.q_len});
  standard_attention_dropout(q, k, v, out, options, dropout, &r.lse);

  r.dq = Tensor::empty(dtype, q.shape());
  r.dk = Tensor::empty(dtype, k.shape());
  r.dv = Tensor::empty(dtype, v.shape());
  const int64_t rows = int64_t{s.batch} * s.heads * s.q_len;
  std::vector<float> delta(static_cast<size_t>(rows)), dq_accum(static_cast<size_t>(rows * D));
  // NaN everywhere the kernels must write (or zero, for the accumulator) before reading.
  for (Tensor* t : {&r.dq, &r.dk, &r.dv}) std::memset(t->data(), 0xFF, static_cast<size_t>(t->numel()) * 2);
  std::memset(delta.data(), 0xFF, delta.size() * 4);
  std::memset(dq_accum.data(), 0xFF, dq_accum.size() * 4);

  ir::CudaModSource layout =
      ir::generate_cuda_mods(score ? &score->def() : nullptr, score ? score->storage_types() : std::vector<DType>{},
                             mask ? &mask->def() : nullptr, mask ? mask->storage_types() : std::vector<DType>{});
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, host_bindings(score), host_bindings(mask));
  attnc_flash_bwd::FlashBackwardParams<typename Gen::Params> p{};
  std::memcpy(static_cast<void*>(&p.mods), bytes.data(), bytes.size());
  p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = out.data(), p.dout = dout.data();
  p.lse = static_cast<const float*>(r.lse.data());
  p.delta = delta.data();
  p.dq_accum = dq_accum.data();
  p.dq = r.dq.data(), p.dk = r.dk.data(), p.dv = r.dv.data();
  set_strides(q, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  set_strides(k, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  set_strides(v, p.v_batch_stride, p.v_head_stride, p.v_row_stride);
  set_strides(out, p.out_batch_stride, p.out_head_stride, p.out_row_stride);
  set_strides(dout, p.dout_batch_stride, p.dout_head_stride, p.dout_row_stride);
  set_strides(r.dq, p.dq_batch_stride, p.dq_head_stride, p.dq_row_stride);
  set_strides(r.dk, p.dk_batch_stride, p.dk_head_stride, p.dk_row_stride);
  set_strides(r.dv, p.dv_batch_stride, p.dv_head_stride, p.dv_row_stride);
  p.lse_batch_stride = r.lse.stride(0), p.lse_head_stride = r.lse.stride(1), p.lse_row_stride = 1;
  p.batch = s.batch, p.num_heads = s.heads, p.num_kv_heads = s.kv_heads, p.q_len = s.q_len, p.kv_len = s.kv_len;
  p.q_offset = s.q_offset;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.bounds = nullptr;
  // The score mod's float tensor parameters, in parameter order: the kernel's gradient slots.
  if (score != nullptr) {
    const ir::ModDef& def = score->def();
    for (uint32_t param = 0; param < def.params.size(); ++param) {
      if (!def.params[param].is_tensor() || def.params[param].elem != ir::Type::Float) continue;
      const Tensor& bound = std::get<Tensor>(*score->argument(param));
      r.dparams.emplace_back(def.params[param].name, Tensor::zeros(DType::F32, bound.shape()));
      p.dparams[r.dparams.size() - 1] = static_cast<float*>(r.dparams.back().second.data());
    }
  }
  REQUIRE(static_cast<int>(r.dparams.size()) == Gen::kNumGradTensors);
  if (dropout.enabled()) {
    p.dropout_threshold = dropout_threshold(dropout.rate);
    p.dropout_keep_scale = dropout.keep_scale();
    p.dropout_seed = dropout.seed;
  }

  using Kernel = attnc_flash_bwd::FlashBackward<Gen, Elem, D, D, BM, BN, W>;
  const emu::Dim3 rows_grid{static_cast<uint32_t>((s.q_len + Kernel::kRowsPerBlock - 1) / Kernel::kRowsPerBlock),
                            static_cast<uint32_t>(s.heads), static_cast<uint32_t>(s.batch)};
  const emu::Dim3 aux_block{Kernel::kAuxThreads, 1, 1};
  emu::launch(rows_grid, aux_block, 0, [&p] { Kernel::preprocess(p); });
  const emu::Dim3 grid{static_cast<uint32_t>((s.kv_len + BN - 1) / BN), static_cast<uint32_t>(s.kv_heads),
                       static_cast<uint32_t>(s.batch)};
  r.main_mma_ops = emu::launch(grid, emu::Dim3{W * 32, 1, 1}, Kernel::kSharedBytes, [&p] { Kernel::run(p); }).mma_ops;
  emu::launch(rows_grid, aux_block, 0, [&p] { Kernel::convert_dq(p); });

  standard_attention_backward(q, k, v, dout, r.ref, options, dropout);
  return r;
}

// Checks the three gradients against the reference at the dtype's tolerance (header comment).
template <class Gen, class Elem, int D, int BM, int BN, int W>
Result check_backward(const Shape& s, const Mod* score, const Mod* mask, uint32_t seed = 11,
                      const Dropout& dropout = {}) {
  const bool bf16 = std::is_same_v<Elem, bf16_t>;
  CAPTURE(bf16 ? "bf16" : "fp16", D, BM, BN, W, s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, s.q_offset);
  Result r = run_backward<Gen, Elem, D, BM, BN, W>(s, score, mask, seed, dropout);
  const double tolerance = bf16 ? 1e-2 : 2e-3;
  const double dq_error = attnc_test::relative_error(r.dq, r.ref.dq);
  const double dk_error = attnc_test::relative_error(r.dk, r.ref.dk);
  const double dv_error = attnc_test::relative_error(r.dv, r.ref.dv);
  CAPTURE(dq_error, dk_error, dv_error);
  CHECK(dq_error < tolerance);
  CHECK(dk_error < tolerance);
  CHECK(dv_error < tolerance);
  for (const auto& [name, gradient] : r.dparams) {
    const double error = attnc_test::relative_error(gradient, r.ref.dparams.at(name));
    CAPTURE(name, error);
    CHECK(error < tolerance);
  }
  return r;
}

// Small tiles (16 keys per warp, 2 warps, 32 query rows per step) so the odd lengths cross several
// tiles each way; head dim 32 keeps the emulation quick.
template <class Gen>
void check_both_dtypes(const Shape& s, const Mod* score, const Mod* mask) {
  check_backward<Gen, bf16_t, 32, 32, 32, 2>(s, score, mask);
  check_backward<Gen, f16_t, 32, 32, 32, 2>(s, score, mask);
}

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < 13 + b ? 0 : i < 40 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("the emulated backward template matches the reference gradients with generated masks",
          "[flash_backward][emulation]") {
  const Shape s;  // GQA 2:1, q_len 45 != kv_len 83, both ragged
  SECTION("no mod") { check_both_dtypes<Gen_none>(s, nullptr, nullptr); }
  SECTION("causal") {
    const Mod m = causal_mod();
    check_both_dtypes<Gen_causal>(s, nullptr, &m);
  }
  SECTION("causal sliding window") {
    const Mod m = sliding_window_mod(19, true);
    check_both_dtypes<Gen_window_causal>(s, nullptr, &m);
  }
  SECTION("document mask") {
    const Mod m = document_mask_mod(document_ids(2, 61));
    check_both_dtypes<Gen_document>(Shape{2, 2, 2, 61, 61}, nullptr, &m);
  }
}

TEST_CASE("the emulated backward template applies the generated score mods and their derivatives",
          "[flash_backward][emulation]") {
  const Shape s;
  SECTION("ALiBi (derivative 1)") {
    const Mod m = alibi_mod(4);
    STATIC_REQUIRE(!Gen_alibi::kHasScoreGrad);
    check_both_dtypes<Gen_alibi>(s, &m, nullptr);
  }
  SECTION("additive bias (a learned bias: its gradient is dS' scatter-added over batch and heads)") {
    const Mod m = additive_bias_mod(normal_tensor(99, DType::F32, {1, 1, s.q_len, s.kv_len}));
    STATIC_REQUIRE(Gen_additive_bias::kNumGradSites == 1);
    const Result r = check_backward<Gen_additive_bias, bf16_t, 32, 32, 32, 2>(s, &m, nullptr);
    REQUIRE(r.dparams.size() == 1);
    CHECK(r.dparams[0].first == "bias");
    check_backward<Gen_additive_bias, f16_t, 32, 32, 32, 2>(s, &m, nullptr, 11, Dropout{0.25f, 3});
  }
  SECTION("softcap (derivative 1 - tanh^2)") {
    // A cap of 1.5 bends scores of about one unit hard (the derivative is about 0.6 there), so a
    // missing or wrong derivative is far outside the tolerance.
    const Mod m = softcap_mod(1.5f);
    STATIC_REQUIRE(Gen_softcap::kHasScoreGrad);
    check_both_dtypes<Gen_softcap>(s, &m, nullptr);
  }
}

TEST_CASE("fully masked rows get zero gradients from the emulated backward template", "[flash_backward][emulation]") {
  // Bottom-right causal with 70 queries and 50 keys: the first 20 rows keep no key (LSE -inf).
  const Mod m = causal_bottom_right_mod();
  const Shape s{1, 2, 2, 70, 50};
  Result r = check_backward<Gen_causal_bottom_right, bf16_t, 32, 32, 32, 2>(s, nullptr, &m);
  const std::vector<float> lse = r.lse.to_float_vector();
  const std::vector<float> dq = r.dq.to_float_vector();
  int masked_rows = 0;
  for (int row = 0; row < s.heads * s.q_len; ++row) {
    if (!std::isinf(lse[static_cast<size_t>(row)])) continue;
    ++masked_rows;
    for (int d = 0; d < 32; ++d) CHECK(dq[static_cast<size_t>(row * 32 + d)] == 0.0f);
  }
  CHECK(masked_rows == 2 * 20);
  check_backward<Gen_causal_bottom_right, f16_t, 32, 32, 32, 2>(s, nullptr, &m);
}

TEST_CASE("the emulated backward template skips EMPTY tiles", "[flash_backward][emulation]") {
  const Mod m = causal_mod();
  const Shape s{1, 2, 1, 128, 128};
  const Result all = run_backward<Gen_none, bf16_t, 32, 32, 32, 2>(s, nullptr, nullptr);
  const Result causal = run_backward<Gen_causal, bf16_t, 32, 32, 32, 2>(s, nullptr, &m);
  // 4 x 4 tiles per head: 10 of 16 are not EMPTY under the causal mask.
  CAPTURE(all.main_mma_ops, causal.main_mma_ops);
  CHECK(causal.main_mma_ops * 16 == all.main_mma_ops * 10);
  CHECK(attnc_test::relative_error(causal.dk, causal.ref.dk) < 1e-2);
}

TEST_CASE("the emulated backward template at the production tiling: head dims 64 and 128, GQA 4:1",
          "[flash_backward][emulation]") {
  SECTION("composition (ALiBi then softcap; causal and document mask), head dim 64, 77 x 133") {
    const Mod score = compose_score_mods({alibi_mod(4), softcap_mod(5.0f)});
    const Mod mask = and_masks({causal_mod(), document_mask_mod(document_ids(1, 133))});
    // FlashBackwardSource's choice for head dim 64: 32 query rows, 64 keys, 4 warps.
    check_backward<Gen_composition, bf16_t, 64, 32, 64, 4>(Shape{1, 4, 1, 77, 133}, &score, &mask);
    check_backward<Gen_composition, f16_t, 64, 32, 64, 4>(Shape{1, 4, 1, 77, 133}, &score, &mask);
  }
  SECTION("causal sliding window, head dim 128") {
    const Mod m = sliding_window_mod(19, true);
    // For head dim 128: 16 query rows, 64 keys, 4 warps.
    check_backward<Gen_window_causal, bf16_t, 128, 16, 64, 4>(Shape{1, 4, 1, 50, 70}, nullptr, &m);
    check_backward<Gen_window_causal, f16_t, 128, 16, 64, 4>(Shape{1, 4, 1, 50, 70}, nullptr, &m);
  }
}

TEST_CASE("with dropout the emulated backward template drops what the reference drops", "[flash_backward][emulation]") {
  // The reference's forward and backward draw with runtime/core/Dropout.h on the CPU; the template
  // with its device copy. A different decision for even a few elements would move the gradients by
  // far more than the tolerance; without dropout the same inputs give other gradients.
  const Mod score = softcap_mod(1.5f);
  const Mod mask = causal_mod();
  const Shape s;
  const Dropout dropout{0.25f, 0x1234567890abcdefULL};
  const Result dropped = check_backward<Gen_softcap, bf16_t, 32, 32, 32, 2>(s, &score, nullptr, 11, dropout);
  check_backward<Gen_softcap, f16_t, 32, 32, 32, 2>(s, &score, nullptr, 11, dropout);
  check_backward<Gen_causal, bf16_t, 32, 32, 32, 2>(s, nullptr, &mask, 11, Dropout{0.5f, 99});
  const Result plain = run_backward<Gen_softcap, bf16_t, 32, 32, 32, 2>(s, &score, nullptr, 11);
  CHECK(attnc_test::relative_error(dropped.dv, plain.ref.dv) > 0.1);
}

TEST_CASE("a chunk of queries at a cache position (q_offset) gets the reference's gradients",
          "[flash_backward][emulation]") {
  // 45 queries at positions 38..82 of 83 keys: causal keeps a different, ragged set of keys per row
  // than at offset 0; ALiBi and dropout also read the positions.
  const Mod mask = causal_mod();
  const Mod alibi = alibi_mod(4);
  Shape s;
  s.q_offset = 38;
  check_backward<Gen_causal, bf16_t, 32, 32, 32, 2>(s, nullptr, &mask, 11, Dropout{0.25f, 5});
  check_backward<Gen_causal, f16_t, 32, 32, 32, 2>(s, nullptr, &mask);
  check_backward<Gen_alibi, bf16_t, 32, 32, 32, 2>(s, &alibi, nullptr);
}
