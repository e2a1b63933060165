// The flash-attention kernel template (runtime/families/flash/flash_attention.cuh) compiled as host C++
// and run through the host emulation of the CUDA execution model (runtime/emulation/HostEmulation.h),
// against the reference attention. The mods are hand-written traits with the generated code's API,
// mirroring the built-in mods the reference evaluates from the prelude. Also: focused tests of the
// emulated instructions against direct math, so a fragment-layout mistake is caught where it is.

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "dsl/Errors.h"
#include "runtime/core/Dropout.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/flash/TileConfig.h"
#include "runtime/families/flash/flash_attention.cuh"
#include "runtime/reference/ReferenceAttention.h"
#include "runtime/reference/ReferenceBackward.h"
#include "tests/support/TestPaths.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::test;
using namespace attnc::flash;
namespace emu = attnc::host_emulation;
using attnc_abi::BoundsReport;
using attnc_abi::ModPoint;
using attnc_abi::TileBox;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

// ---------------------------------------------------------------------------------------------
// Hand-written Mods traits, one per built-in mod the tests use.

constexpr int kEmpty = 0, kFull = 1, kPartial = 2;

struct NoMods {
  struct Params {};
  static constexpr bool kHasScoreMod = false, kHasMaskMod = false, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint&, const Params&, BoundsReport*) { return true; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return kFull; }
};

// kv_idx <= q_idx. Counts mask evaluations, so tests can check that FULL tiles skip the mask.
struct CausalMods {
  struct Params {
    std::atomic<long>* mask_calls = nullptr;
  };
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params& params, BoundsReport*) {
    if (params.mask_calls != nullptr) ++*params.mask_calls;
    return p.kv_idx <= p.q_idx;
  }
  static int tile_class(const TileBox& t, const ModPoint&, const Params&) {
    if (t.kv_first > t.q_last) return kEmpty;
    if (t.kv_last <= t.q_first) return kFull;
    return kPartial;
  }
};

// q_idx + kv_len - q_len >= kv_idx (causal aligned to the bottom right): with q_len > kv_len the
// first q_len - kv_len rows keep no key at all.
struct CausalBottomRightMods {
  struct Params {};
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params&, BoundsReport*) {
    return p.q_idx + p.kv_len - p.q_len >= p.kv_idx;
  }
  static int tile_class(const TileBox& t, const ModPoint& p, const Params&) {
    const int shift = p.kv_len - p.q_len;
    if (t.kv_first > t.q_last + shift) return kEmpty;
    if (t.kv_last <= t.q_first + shift) return kFull;
    return kPartial;
  }
};

// Causal sliding window: q_idx - window < kv_idx <= q_idx.
struct SlidingWindowMods {
  struct Params {
    int32_t window;
  };
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params& params, BoundsReport*) {
    return p.kv_idx <= p.q_idx && p.q_idx - params.window < p.kv_idx;
  }
  static int tile_class(const TileBox& t, const ModPoint&, const Params& params) {
    if (t.kv_first > t.q_last || t.kv_last <= t.q_first - params.window) return kEmpty;
    if (t.kv_last <= t.q_first && t.kv_first > t.q_last - params.window) return kFull;
    return kPartial;
  }
};

// score - slopes[h] * |q_idx - kv_idx|.
struct AlibiMods {
  struct Params {
    const float* slopes;
  };
  static constexpr bool kHasScoreMod = true, kHasMaskMod = false, kCheckBounds = false;
  static float score_mod(float s, const ModPoint& p, const Params& params, BoundsReport*) {
    return s - params.slopes[p.h] * static_cast<float>(std::abs(p.q_idx - p.kv_idx));
  }
  static bool mask_mod(const ModPoint&, const Params&, BoundsReport*) { return true; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return kFull; }
};

// cap * tanh(score / cap).
struct SoftcapMods {
  struct Params {
    float cap;
  };
  static constexpr bool kHasScoreMod = true, kHasMaskMod = false, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params& params, BoundsReport*) {
    return params.cap * std::tanh(s / params.cap);
  }
  static bool mask_mod(const ModPoint&, const Params&, BoundsReport*) { return true; }
  static int tile_class(const TileBox&, const ModPoint&, const Params&) { return kFull; }
};

// document_ids[b, q_idx] == document_ids[b, kv_idx], classified from the id ranges of the box as
// the generated classifier does (disjoint ranges: EMPTY; one shared id: FULL).
struct DocumentMods {
  struct Params {
    const int32_t* ids;
    int64_t batch_stride;
  };
  static constexpr bool kHasScoreMod = false, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint&, const Params&, BoundsReport*) { return s; }
  static bool mask_mod(const ModPoint& p, const Params& params, BoundsReport*) {
    const int32_t* ids = params.ids + p.b * params.batch_stride;
    return ids[p.q_idx] == ids[p.kv_idx];
  }
  static int tile_class(const TileBox& t, const ModPoint& p, const Params& params) {
    const int32_t* ids = params.ids + p.b * params.batch_stride;
    auto [q_min, q_max] = std::minmax_element(ids + t.q_first, ids + t.q_last + 1);
    auto [kv_min, kv_max] = std::minmax_element(ids + t.kv_first, ids + t.kv_last + 1);
    if (*q_max < *kv_min || *kv_max < *q_min) return kEmpty;
    if (*q_min == *q_max && *kv_min == *kv_max && *q_min == *kv_min) return kFull;
    return kPartial;
  }
};

// A composition: softcap(alibi(score)) under a causal mask.
struct CausalAlibiSoftcapMods {
  struct Params {
    AlibiMods::Params alibi;
    SoftcapMods::Params softcap;
  };
  static constexpr bool kHasScoreMod = true, kHasMaskMod = true, kCheckBounds = false;
  static float score_mod(float s, const ModPoint& p, const Params& params, BoundsReport* r) {
    return SoftcapMods::score_mod(AlibiMods::score_mod(s, p, params.alibi, r), p, params.softcap, r);
  }
  static bool mask_mod(const ModPoint& p, const Params&, BoundsReport* r) {
    return CausalMods::mask_mod(p, CausalMods::Params{}, r);
  }
  static int tile_class(const TileBox& t, const ModPoint& p, const Params&) {
    return CausalMods::tile_class(t, p, CausalMods::Params{});
  }
};

// ---------------------------------------------------------------------------------------------
// Running the template and the reference.

struct Shape {
  int batch = 1, heads = 2, kv_heads = 2, q_len = 64, kv_len = 64;
};

template <class Elem>
constexpr DType dtype_of() {
  return std::is_same_v<Elem, bf16_t> ? DType::BF16 : DType::F16;
}

struct Inputs {
  Tensor q, k, v;
};

template <class Elem>
Inputs make_inputs(const Shape& s, int head_dim, int head_dim_v, uint32_t seed) {
  const DType dtype = dtype_of<Elem>();
  return Inputs{normal_tensor(seed, dtype, {s.batch, s.heads, s.q_len, head_dim}),
                normal_tensor(seed + 1, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim}),
                normal_tensor(seed + 2, dtype, {s.batch, s.kv_heads, s.kv_len, head_dim_v})};
}

// Output (B, H, S, Dv) in the input dtype, poisoned with NaN, and the fp32 LSE poisoned too.
struct Outputs {
  Tensor out, lse;
  emu::LaunchStats stats;
};

template <class Mods, class Elem, int D, int DV, int BM, int BN, int W, bool DROPOUT = false>
Outputs run_template(const Inputs& in, const typename Mods::Params& mods, bool with_lse = true, int32_t q_offset = 0,
                     const Dropout& dropout = {}) {
  using Kernel = attnc_flash::FlashForward<Mods, Elem, D, DV, BM, BN, W, DROPOUT>;
  const int64_t B = in.q.size(0), H = in.q.size(1), S = in.q.size(2);
  Outputs result;
  result.out = Tensor::empty(in.q.dtype(), {B, H, S, DV});
  result.lse = Tensor::empty(DType::F32, {B, H, S});
  const uint16_t nan16 = std::is_same_v<Elem, bf16_t> ? 0x7FC0 : 0x7E00;
  std::fill_n(static_cast<uint16_t*>(result.out.data()), result.out.numel(), nan16);
  std::fill_n(static_cast<float*>(result.lse.data()), result.lse.numel(), std::nanf(""));

  attnc_flash::FlashParams<typename Mods::Params> p{};
  p.q = in.q.data();
  p.k = in.k.data();
  p.v = in.v.data();
  p.out = result.out.data();
  p.lse = with_lse ? static_cast<float*>(result.lse.data()) : nullptr;
  p.q_batch_stride = in.q.stride(0), p.q_head_stride = in.q.stride(1), p.q_row_stride = in.q.stride(2);
  p.k_batch_stride = in.k.stride(0), p.k_head_stride = in.k.stride(1), p.k_row_stride = in.k.stride(2);
  p.v_batch_stride = in.v.stride(0), p.v_head_stride = in.v.stride(1), p.v_row_stride = in.v.stride(2);
  p.out_batch_stride = result.out.stride(0), p.out_head_stride = result.out.stride(1);
  p.out_row_stride = result.out.stride(2);
  p.lse_batch_stride = result.lse.stride(0), p.lse_head_stride = result.lse.stride(1), p.lse_row_stride = 1;
  p.batch = static_cast<int32_t>(B);
  p.num_heads = static_cast<int32_t>(H);
  p.num_kv_heads = static_cast<int32_t>(in.k.size(1));
  p.q_len = static_cast<int32_t>(S);
  p.kv_len = static_cast<int32_t>(in.k.size(2));
  p.q_offset = q_offset;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.dropout_seed = dropout.seed;
  p.dropout_threshold = dropout_threshold(dropout.rate);
  p.dropout_keep_scale = dropout.keep_scale();
  p.mods = mods;
  p.bounds = nullptr;

  const emu::Dim3 grid{static_cast<uint32_t>((S + BM - 1) / BM), static_cast<uint32_t>(H), static_cast<uint32_t>(B)};
  result.stats = emu::launch(grid, emu::Dim3{W * 32, 1, 1}, Kernel::kSharedBytes, [&p] { Kernel::run(p); });
  return result;
}

struct Reference {
  Tensor out, lse;
};

Reference run_reference(const Inputs& in, const Mod* score_mod, const Mod* mask_mod) {
  AttentionOptions options;
  options.score_mod = score_mod;
  options.mask_mod = mask_mod;
  Reference ref;
  ref.out = standard_attention(in.q, in.k, in.v, options, &ref.lse);
  return ref;
}

// The LSE must be -inf exactly where the reference's is, and close elsewhere.
void check_lse(const Tensor& lse, const Tensor& ref) {
  REQUIRE(lse.numel() == ref.numel());
  CHECK(attnc_test::lse_mismatches(lse, ref) == 0);
}

template <class Elem>
double tolerance() {
  return std::is_same_v<Elem, bf16_t> ? 1e-2 : 1e-3;
}

// Runs the template and the reference on random inputs and compares outputs and LSEs.
template <class Mods, class Elem, int D, int DV, int BM, int BN, int W>
void check_against_reference(const Shape& shape, const typename Mods::Params& mods, const Mod* score_mod,
                             const Mod* mask_mod, uint32_t seed = 1) {
  CAPTURE(dtype_name(dtype_of<Elem>()), D, DV, BM, BN, W);
  CAPTURE(shape.batch, shape.heads, shape.kv_heads, shape.q_len, shape.kv_len);
  const Inputs in = make_inputs<Elem>(shape, D, DV, seed);
  const Outputs got = run_template<Mods, Elem, D, DV, BM, BN, W>(in, mods);
  const Reference ref = run_reference(in, score_mod, mask_mod);
  const double error = attnc_test::relative_error(got.out, ref.out);
  CAPTURE(error);
  CHECK(error < tolerance<Elem>());
  check_lse(got.lse, ref.lse);
}

// The configurations TileConfig chooses on sm_80 (checked below), per head dim.
template <class Mods, class Elem, int D>
void check_production_config(const Shape& shape, const typename Mods::Params& mods, const Mod* score_mod,
                             const Mod* mask_mod, uint32_t seed = 1) {
  if constexpr (D <= 128) {
    check_against_reference<Mods, Elem, D, D, 128, 64, 8>(shape, mods, score_mod, mask_mod, seed);
  } else {
    check_against_reference<Mods, Elem, D, D, 64, 32, 4>(shape, mods, score_mod, mask_mod, seed);
  }
}

std::vector<float> alibi_slope_table(int heads) { return alibi_slopes(heads); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// The emulated instructions against direct math.

namespace {

uint32_t pack_bf16(float lo, float hi) {
  return uint32_t{float_to_bfloat16(lo)} | (uint32_t{float_to_bfloat16(hi)} << 16);
}

}  // namespace

TEST_CASE("emulated mma.m16n8k16 multiplies matrices laid out as the PTX ISA's fragments", "[runtime][emulation]") {
  // Small integers are exact in bf16 and fp16, so the product must match exactly.
  float a[16][8 * 2], b[16][8], c[16][8];
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-4, 4);
  for (auto& row : a)
    for (float& x : row) x = static_cast<float>(small(rng));
  for (auto& row : b)
    for (float& x : row) x = static_cast<float>(small(rng));
  for (auto& row : c)
    for (float& x : row) x = static_cast<float>(small(rng));
  const bool use_f16 = GENERATE(false, true);
  CAPTURE(use_f16);
  auto pack = [use_f16](float lo, float hi) {
    return use_f16 ? (uint32_t{float_to_half(lo)} | (uint32_t{float_to_half(hi)} << 16)) : pack_bf16(lo, hi);
  };

  float d[32][4];
  emu::launch(emu::Dim3{}, emu::Dim3{32, 1, 1}, 0, [&] {
    const int lane = attnc_dev::thread_idx_x(), g = lane / 4, t = lane % 4;
    const uint32_t a_frag[4] = {pack(a[g][2 * t], a[g][2 * t + 1]), pack(a[g + 8][2 * t], a[g + 8][2 * t + 1]),
                                pack(a[g][2 * t + 8], a[g][2 * t + 9]), pack(a[g + 8][2 * t + 8], a[g + 8][2 * t + 9])};
    const uint32_t b_frag[2] = {pack(b[2 * t][g], b[2 * t + 1][g]), pack(b[2 * t + 8][g], b[2 * t + 9][g])};
    float acc[4] = {c[g][2 * t], c[g][2 * t + 1], c[g + 8][2 * t], c[g + 8][2 * t + 1]};
    if (use_f16) {
      attnc_dev::mma_m16n8k16<f16_t>(acc, a_frag, b_frag);
    } else {
      attnc_dev::mma_m16n8k16<bf16_t>(acc, a_frag, b_frag);
    }
    std::copy(acc, acc + 4, d[lane]);
  });
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
      float expected = c[row][col];
      for (int k = 0; k < 16; ++k) expected += a[row][k] * b[k][col];
      CAPTURE(lane, i, row, col);
      CHECK(d[lane][i] == expected);
    }
  }
}

TEST_CASE("emulated ldmatrix gives each lane its fragment, transposed with .trans", "[runtime][emulation]") {
  // Four 8x8 matrices stored with a padded row stride; element (m, r, c) holds 1000 m + 10 r + c.
  constexpr int kStride = 24;
  alignas(16) uint16_t storage[4][8][kStride];
  for (int m = 0; m < 4; ++m)
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < kStride; ++c) storage[m][r][c] = static_cast<uint16_t>(1000 * m + 10 * r + c);
  const bool trans = GENERATE(false, true);
  CAPTURE(trans);
  uint32_t regs[32][4];
  emu::launch(emu::Dim3{}, emu::Dim3{32, 1, 1}, 0, [&] {
    const int lane = attnc_dev::thread_idx_x();
    uint32_t r[4];
    const void* row = storage[lane / 8][lane % 8];
    if (trans) {
      attnc_dev::ldmatrix_x4_trans(r, row);
    } else {
      attnc_dev::ldmatrix_x4(r, row);
    }
    std::copy(r, r + 4, regs[lane]);
  });
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int m = 0; m < 4; ++m) {
      // Without .trans: row g, columns 2t, 2t+1. With .trans: column g of rows 2t, 2t+1.
      const uint16_t lo = trans ? storage[m][2 * t][g] : storage[m][g][2 * t];
      const uint16_t hi = trans ? storage[m][2 * t + 1][g] : storage[m][g][2 * t + 1];
      CAPTURE(lane, m);
      CHECK((regs[lane][m] & 0xFFFF) == lo);
      CHECK((regs[lane][m] >> 16) == hi);
    }
  }
}

TEST_CASE("emulated warp shuffles exchange values between the lanes the PTX ISA names", "[runtime][emulation]") {
  float xor_result[64];
  uint32_t idx_result[64];
  emu::launch(emu::Dim3{}, emu::Dim3{64, 1, 1}, 0, [&] {
    const int tid = attnc_dev::thread_idx_x(), lane = tid % 32;
    xor_result[tid] = attnc_dev::shfl_xor(static_cast<float>(tid), lane % 2 == 0 ? 1 : 2);
    idx_result[tid] = attnc_dev::shfl_idx(static_cast<uint32_t>(100 + tid), (lane * 7) % 32);
  });
  for (int tid = 0; tid < 64; ++tid) {
    const int lane = tid % 32, warp_base = tid - lane;
    CAPTURE(tid);
    CHECK(xor_result[tid] == static_cast<float>(warp_base + (lane ^ (lane % 2 == 0 ? 1 : 2))));
    CHECK(idx_result[tid] == static_cast<uint32_t>(100 + warp_base + (lane * 7) % 32));
  }
}

TEST_CASE("emulated barriers publish shared memory and cp.async lands only when waited for", "[runtime][emulation]") {
  constexpr int kThreads = 128;
  alignas(16) static uint32_t global[kThreads][4];
  for (int i = 0; i < kThreads; ++i)
    for (int j = 0; j < 4; ++j) global[i][j] = static_cast<uint32_t>(10 * i + j);
  uint32_t before_wait[kThreads], after_barrier[kThreads], zero_filled[kThreads];
  const emu::LaunchStats stats = emu::launch(emu::Dim3{2, 1, 1}, emu::Dim3{kThreads, 1, 1}, 2 * kThreads * 16, [&] {
    const int tid = attnc_dev::thread_idx_x();
    auto* smem = reinterpret_cast<uint32_t(*)[4]>(attnc_dev::dynamic_shared_memory());
    attnc_dev::cp_async_16(smem[tid], global[tid], true);
    attnc_dev::cp_async_16(smem[kThreads + tid], global[tid], false);
    attnc_dev::cp_async_commit();
    if (attnc_dev::block_idx_x() == 0) before_wait[tid] = smem[tid][0];
    attnc_dev::cp_async_wait<0>();
    attnc_dev::block_barrier();
    const int neighbour = (tid + 1) % kThreads;
    if (attnc_dev::block_idx_x() == 0) {
      after_barrier[tid] = smem[neighbour][1];
      zero_filled[tid] = smem[kThreads + neighbour][2];
    }
  });
  CHECK(stats.blocks == 2);
  CHECK(stats.cp_async_bytes == 2 * 2 * kThreads * 16);
  for (int tid = 0; tid < kThreads; ++tid) {
    CAPTURE(tid);
    CHECK(before_wait[tid] == 0xFFFFFFFFu);  // still the poison: the copy has not landed
    CHECK(after_barrier[tid] == static_cast<uint32_t>(10 * ((tid + 1) % kThreads) + 1));
    CHECK(zero_filled[tid] == 0u);
  }
}

TEST_CASE("the host emulation reports divergent collectives and barriers never reached", "[runtime][emulation]") {
  SECTION("lanes of one warp at different collectives") {
    auto kernel = [] {
      const int lane = attnc_dev::thread_idx_x();
      if (lane < 16) {
        attnc_dev::shfl_xor(1.0f, 1);
      } else {
        attnc_dev::shfl_idx(1u, 0);
      }
    };
    CHECK_THROWS_AS(emu::launch(emu::Dim3{}, emu::Dim3{32, 1, 1}, 0, kernel), InternalError);
  }
  SECTION("a barrier that half the block skips") {
    auto kernel = [] {
      if (attnc_dev::thread_idx_x() < 32) attnc_dev::block_barrier();
    };
    CHECK_THROWS_AS(emu::launch(emu::Dim3{}, emu::Dim3{64, 1, 1}, 0, kernel), InternalError);
  }
  SECTION("an exception thrown by a thread reaches the caller") {
    auto kernel = [] {
      if (attnc_dev::thread_idx_x() == 5) throw std::runtime_error("thread 5 failed");
      attnc_dev::block_barrier();
    };
    CHECK_THROWS_WITH(emu::launch(emu::Dim3{}, emu::Dim3{32, 1, 1}, 0, kernel), "thread 5 failed");
  }
}

// ---------------------------------------------------------------------------------------------
// The template against the reference attention.

TEST_CASE("flash attention without mods matches the reference for every head dim", "[runtime][flash]") {
  const Shape shape{1, 2, 2, 77, 131};  // lengths that are not multiples of any tile
  SECTION("bf16") {
    check_production_config<NoMods, bf16_t, 32>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, bf16_t, 64>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, bf16_t, 96>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, bf16_t, 128>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, bf16_t, 256>(shape, {}, nullptr, nullptr);
  }
  SECTION("fp16") {
    check_production_config<NoMods, f16_t, 32>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, f16_t, 64>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, f16_t, 96>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, f16_t, 128>(shape, {}, nullptr, nullptr);
    check_production_config<NoMods, f16_t, 256>(shape, {}, nullptr, nullptr);
  }
}

TEST_CASE("flash attention takes a head dim for V different from Q and K", "[runtime][flash]") {
  const Shape shape{1, 2, 1, 70, 90};
  check_against_reference<NoMods, bf16_t, 128, 64, 64, 64, 4>(shape, {}, nullptr, nullptr);
  // Two m16 row blocks per warp.
  check_against_reference<NoMods, f16_t, 64, 128, 128, 64, 4>(shape, {}, nullptr, nullptr);
}

TEST_CASE("flash attention applies a causal mask, in both dtypes and for each head dim", "[runtime][flash]") {
  const Mod causal = causal_mod();
  const Shape shape{1, 2, 2, 150, 150};
  check_production_config<CausalMods, bf16_t, 64>(shape, {}, nullptr, &causal);
  check_production_config<CausalMods, f16_t, 64>(shape, {}, nullptr, &causal);
  check_production_config<CausalMods, bf16_t, 128>(shape, {}, nullptr, &causal);
  check_production_config<CausalMods, f16_t, 128>(shape, {}, nullptr, &causal);
  // A smaller tile, so that most tiles are FULL or EMPTY and few PARTIAL.
  check_against_reference<CausalMods, bf16_t, 64, 64, 32, 16, 2>(shape, {}, nullptr, &causal);
}

TEST_CASE("flash attention with dropout drops the fp64 reference's elements", "[runtime][flash][dropout]") {
  // Odd lengths, GQA 2:1 and a query offset; causal, so masked elements (P = 0) meet the draws.
  const Mod causal = causal_mod();
  const Shape shape{2, 4, 2, 77, 133};
  const Dropout dropout{0.3f, 0xABCDEF0123ull};
  AttentionOptions options;
  options.mask_mod = &causal;
  options.q_offset = 56;
  for (bool bf16 : {true, false}) {
    CAPTURE(bf16);
    const Inputs in = bf16 ? make_inputs<bf16_t>(shape, 64, 64, 9) : make_inputs<f16_t>(shape, 64, 64, 9);
    const Outputs got =
        bf16 ? run_template<CausalMods, bf16_t, 64, 64, 128, 64, 8, true>(in, {}, true, 56, dropout)
             : run_template<CausalMods, f16_t, 64, 64, 128, 64, 8, true>(in, {}, true, 56, dropout);
    Tensor want = Tensor::empty(DType::F32, {2, 4, 77, 64}), want_lse;
    standard_attention_dropout(in.q, in.k, in.v, want, options, dropout, &want_lse);
    const double error = attnc_test::relative_error(got.out, want);
    CAPTURE(error);
    CHECK(error < (bf16 ? 1e-2 : 1e-3));
    check_lse(got.lse, want_lse);  // the undropped softmax's
    // Without the draws the output is another: the test sees the dropping.
    const Outputs undropped = bf16 ? run_template<CausalMods, bf16_t, 64, 64, 128, 64, 8>(in, {}, true, 56)
                                   : run_template<CausalMods, f16_t, 64, 64, 128, 64, 8>(in, {}, true, 56);
    CHECK(attnc_test::relative_error(undropped.out, want) > 0.1);
  }
}

TEST_CASE("flash attention applies a sliding window", "[runtime][flash]") {
  const int window = GENERATE(1, 20, 100);
  CAPTURE(window);
  const Mod mask = sliding_window_mod(window, true);
  const Shape shape{1, 2, 2, 200, 200};
  check_production_config<SlidingWindowMods, bf16_t, 64>(shape, {window}, nullptr, &mask);
  check_production_config<SlidingWindowMods, f16_t, 128>(shape, {window}, nullptr, &mask);
}

TEST_CASE("flash attention applies ALiBi and softcap score mods in registers", "[runtime][flash]") {
  SECTION("ALiBi") {
    const Shape shape{1, 4, 4, 96, 112};
    const std::vector<float> slopes = alibi_slope_table(shape.heads);
    const Mod alibi = alibi_mod(shape.heads);
    check_production_config<AlibiMods, bf16_t, 64>(shape, {slopes.data()}, &alibi, nullptr);
    check_production_config<AlibiMods, f16_t, 128>(shape, {slopes.data()}, &alibi, nullptr);
  }
  SECTION("softcap") {
    const Shape shape{1, 2, 2, 80, 80};
    const Mod softcap = softcap_mod(2.0f);
    check_production_config<SoftcapMods, bf16_t, 64>(shape, {2.0f}, &softcap, nullptr);
    check_production_config<SoftcapMods, f16_t, 128>(shape, {2.0f}, &softcap, nullptr);
  }
}

TEST_CASE("flash attention applies a document mask read from a tensor", "[runtime][flash]") {
  const Shape shape{2, 2, 2, 160, 160};
  // Documents of uneven lengths, different per batch.
  std::vector<int32_t> ids(static_cast<size_t>(shape.batch * shape.q_len));
  for (int b = 0; b < shape.batch; ++b)
    for (int i = 0; i < shape.q_len; ++i) ids[b * shape.q_len + i] = b == 0 ? i / 45 : (i < 10 ? 0 : i < 150 ? 1 : 2);
  const Tensor id_tensor = Tensor::from_vector(ids, {shape.batch, shape.q_len});
  const Mod mask = document_mask_mod(id_tensor);
  const DocumentMods::Params params{ids.data(), shape.q_len};
  check_production_config<DocumentMods, bf16_t, 64>(shape, params, nullptr, &mask);
  check_production_config<DocumentMods, f16_t, 128>(shape, params, nullptr, &mask);
}

TEST_CASE("flash attention applies a composition of score mods under a mask", "[runtime][flash]") {
  const Shape shape{1, 4, 2, 130, 130};
  const std::vector<float> slopes = alibi_slope_table(shape.heads);
  const Mod score = compose_score_mods({alibi_mod(shape.heads), softcap_mod(3.0f)});
  const Mod mask = causal_mod();
  const CausalAlibiSoftcapMods::Params params{{slopes.data()}, {3.0f}};
  check_production_config<CausalAlibiSoftcapMods, bf16_t, 64>(shape, params, &score, &mask);
  check_production_config<CausalAlibiSoftcapMods, f16_t, 128>(shape, params, &score, &mask);
}

TEST_CASE("flash attention shares key/value heads between query heads (GQA and MQA)", "[runtime][flash]") {
  const Mod causal = causal_mod();
  check_production_config<CausalMods, bf16_t, 64>(Shape{2, 6, 2, 50, 50}, {}, nullptr, &causal);
  check_production_config<NoMods, f16_t, 128>(Shape{1, 4, 1, 40, 72}, {}, nullptr, nullptr);
}

TEST_CASE("flash attention handles q_len != kv_len and tiny lengths", "[runtime][flash]") {
  const auto [q_len, kv_len] = GENERATE(table<int, int>({{37, 201}, {201, 37}, {1, 1}, {1, 300}, {129, 7}}));
  CAPTURE(q_len, kv_len);
  check_production_config<NoMods, bf16_t, 64>(Shape{1, 1, 1, q_len, kv_len}, {}, nullptr, nullptr);
  check_production_config<NoMods, f16_t, 128>(Shape{1, 1, 1, q_len, kv_len}, {}, nullptr, nullptr);
}

TEST_CASE("fully masked rows give zero output and an LSE of -inf", "[runtime][flash]") {
  // Bottom-right causal with q_len > kv_len: the first q_len - kv_len rows keep no key.
  const Mod mask = causal_bottom_right_mod();
  const Shape shape{1, 2, 2, 150, 60};
  const Inputs in = make_inputs<bf16_t>(shape, 64, 64, 5);
  const Outputs got = run_template<CausalBottomRightMods, bf16_t, 64, 64, 128, 64, 8>(in, {});
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < 90; ++i) {
      CAPTURE(h, i);
      REQUIRE(std::isinf(got.lse.get_float({0, h, i})));
      REQUIRE(got.lse.get_float({0, h, i}) < 0);
      for (int64_t d = 0; d < 64; d += 9) REQUIRE(got.out.get_float({0, h, i, d}) == 0.0f);
    }
  }
  const Reference ref = run_reference(in, nullptr, &mask);
  CHECK(attnc_test::relative_error(got.out, ref.out) < 1e-2);
  check_lse(got.lse, ref.lse);
}

TEST_CASE("a kept NaN score makes its row NaN, as in the reference", "[runtime][flash][nan]") {
  // Row 5 of head 0 is NaN in q (every score NaN); key 70 of head 0 is NaN in k (under the causal
  // mask, rows 70.. keep it); head 1 has neither. Two query tiles, two key tiles.
  const Mod mask = causal_mod();
  const Shape shape{1, 2, 2, 150, 100};
  Inputs in = make_inputs<bf16_t>(shape, 64, 64, 9);
  for (int64_t d = 0; d < 64; ++d) {
    in.q.set_float({0, 0, 5, d}, NAN);
    in.k.set_float({0, 0, 70, d}, NAN);
  }
  const Outputs got = run_template<CausalMods, bf16_t, 64, 64, 128, 64, 8>(in, {});
  const Reference ref = run_reference(in, nullptr, &mask);
  REQUIRE(std::isnan(ref.lse.get_float({0, 0, 5})));
  REQUIRE(std::isnan(ref.lse.get_float({0, 0, 99})));
  CHECK(attnc_test::nan_mismatches(got.out, ref.out) == 0);
  check_lse(got.lse, ref.lse);
  CHECK(attnc_test::relative_error_where_defined(got.out, ref.out) < 1e-2);
}

TEST_CASE("q_offset shifts the rows the causal mask and the tile classes see", "[runtime][flash]") {
  // 100 query rows at positions 83.. of 300 keys: rows see 84..183 keys, and key tiles past each
  // row block's last position are EMPTY.
  const Mod mask = causal_mod();
  const Shape shape{1, 2, 1, 100, 300};
  const Inputs in = make_inputs<f16_t>(shape, 64, 64, 13);
  const Outputs got = run_template<CausalMods, f16_t, 64, 64, 128, 64, 8>(in, {}, true, 83);
  AttentionOptions options;
  options.mask_mod = &mask;
  options.q_offset = 83;
  Reference ref;
  ref.out = standard_attention(in.q, in.k, in.v, options, &ref.lse);
  CHECK(attnc_test::relative_error(got.out, ref.out) < tolerance<f16_t>());
  check_lse(got.lse, ref.lse);
  // Per head one CTA: Q (128 rows x 64, 16 KiB) and, for positions 83..182, key tiles 0..2 of 0..4
  // (K and V, 16 KiB each tile); without the offset the classifier would keep only tiles 0..1.
  CHECK(got.stats.cp_async_bytes == uint64_t(2) * (16384 + 3 * 16384));
}

TEST_CASE("flash attention reads arbitrary batch, head and sequence strides", "[runtime][flash]") {
  // q, k, v and out stored as (B, S, H, D) and viewed as (B, H, S, D).
  const int B = 2, H = 2, S = 70, D = 64;
  auto bshd_view = [&](const Tensor& storage) {
    return Tensor::from_storage(std::shared_ptr<void>(storage.data(), [storage](void*) {}), storage.data(),
                                storage.dtype(), {B, H, S, D}, {int64_t{S} * H * D, D, int64_t{H} * D, 1});
  };
  Inputs in{bshd_view(normal_tensor(11, DType::BF16, {B, S, H, D})),
            bshd_view(normal_tensor(12, DType::BF16, {B, S, H, D})),
            bshd_view(normal_tensor(13, DType::BF16, {B, S, H, D}))};
  const Mod causal = causal_mod();
  const Outputs got = run_template<CausalMods, bf16_t, 64, 64, 128, 64, 4>(in, {});
  const Reference ref = run_reference(in, nullptr, &causal);
  CHECK(attnc_test::relative_error(got.out, ref.out) < 1e-2);
  check_lse(got.lse, ref.lse);
}

TEST_CASE("flash attention without an LSE pointer writes only the output", "[runtime][flash]") {
  const Inputs in = make_inputs<f16_t>(Shape{1, 1, 1, 33, 33}, 64, 64, 21);
  const Outputs got = run_template<NoMods, f16_t, 64, 64, 128, 64, 4>(in, {}, /*with_lse=*/false);
  const Reference ref = run_reference(in, nullptr, nullptr);
  CHECK(attnc_test::relative_error(got.out, ref.out) < 1e-3);
  for (float x : got.lse.to_float_vector()) CHECK(std::isnan(x));  // untouched poison
}

TEST_CASE("EMPTY tiles are neither loaded nor computed and FULL tiles skip the mask", "[runtime][flash]") {
  const Shape shape{1, 1, 1, 256, 256};
  const Inputs in = make_inputs<bf16_t>(shape, 64, 64, 31);
  // BLOCK_M = BLOCK_N = 64: 4 x 4 tiles, of which causal makes 6 EMPTY, 6 FULL and 4 PARTIAL.
  const Outputs full = run_template<NoMods, bf16_t, 64, 64, 64, 64, 4>(in, {});
  std::atomic<long> mask_calls{0};
  const Outputs causal = run_template<CausalMods, bf16_t, 64, 64, 64, 64, 4>(in, {&mask_calls});
  // Q is loaded once per CTA (4 x 64 x 64 elements); K and V once per live tile.
  const uint64_t q_bytes = 4 * 64 * 64 * 2, kv_tile_bytes = 2 * 64 * 64 * 2;
  CHECK(full.stats.cp_async_bytes == q_bytes + 16 * kv_tile_bytes);
  CHECK(causal.stats.cp_async_bytes == q_bytes + 10 * kv_tile_bytes);
  const uint64_t mma_per_tile = 4 /*warps*/ * (4 * 8 /*Q K^T*/ + 4 * 8 /*P V*/);
  CHECK(full.stats.mma_ops == 16 * mma_per_tile);
  CHECK(causal.stats.mma_ops == 10 * mma_per_tile);
  // The mask runs once per element of the 4 diagonal tiles only.
  CHECK(mask_calls.load() == 4 * 64 * 64);
}

TEST_CASE("the tile configuration fits each architecture and matches the template's shared memory",
          "[runtime][flash][tile-config]") {
  for (int sm : {80, 86, 89, 90}) {
    for (int d : {32, 64, 96, 128, 256}) {
      CAPTURE(sm, d);
      const TileConfig config = choose_tile_config(d, d, sm);
      CHECK(config.block_m % (16 * config.num_warps) == 0);
      CHECK(config.block_n % 16 == 0);
      CHECK(flash_shared_bytes(config, d, d) <= max_dynamic_shared_bytes(sm));
    }
  }
  // The configurations the tests above instantiate are the ones chosen for sm_80.
  CHECK(choose_tile_config(64, 64, 80) == TileConfig{128, 64, 8});
  CHECK(choose_tile_config(128, 128, 80) == TileConfig{128, 64, 8});
  CHECK(choose_tile_config(256, 256, 80) == TileConfig{64, 32, 4});
  CHECK(flash_shared_bytes({128, 64, 8}, 128, 128) ==
        size_t(attnc_flash::FlashForward<NoMods, bf16_t, 128, 128, 128, 64, 8>::kSharedBytes));
  CHECK(flash_shared_bytes({64, 32, 4}, 256, 256) ==
        size_t(attnc_flash::FlashForward<NoMods, bf16_t, 256, 256, 64, 32, 4>::kSharedBytes));
  CHECK(flash_shared_bytes({64, 64, 4}, 128, 64) ==
        size_t(attnc_flash::FlashForward<NoMods, bf16_t, 128, 64, 64, 64, 4>::kSharedBytes));
  CHECK_THROWS_AS(choose_tile_config(72, 72, 80), RuntimeError);
  CHECK_THROWS_AS(choose_tile_config(64, 64, 75), RuntimeError);
}

// ---------------------------------------------------------------------------------------------
// The device path.

namespace {

// nvcc from ATTNC_NVCC, the default CUDA installation or PATH; empty when there is none.
std::string find_nvcc() {
  if (const char* from_env = std::getenv("ATTNC_NVCC")) return from_env;
  if (std::filesystem::exists("/usr/local/cuda/bin/nvcc")) return "/usr/local/cuda/bin/nvcc";
  if (std::system("command -v nvcc >/dev/null 2>&1") == 0) return "nvcc";
  return "";
}

// Runs `command`, returning its exit status and (through `output`) stdout and stderr.
int run_command(const std::string& command, std::string& output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  return pclose(pipe);
}

}  // namespace

TEST_CASE("the template compiles with nvcc for sm_80 and sm_90 without register spills", "[runtime][flash][nvcc]") {
  const std::string nvcc = find_nvcc();
  if (nvcc.empty()) {
    WARN("nvcc not found (set ATTNC_NVCC): the device-path compile check did not run");
    return;
  }
  const std::string source_dir = attnc::test::source_dir();
  for (const char* arch : {"sm_80", "sm_90"}) {
    CAPTURE(arch);
    std::string output;
    const int status = run_command(nvcc + " -arch=" + arch + " -std=c++17 --ptxas-options=-v -I" + source_dir +
                                       "/runtime/kernels -I" + source_dir + "/runtime/families/flash -c " + source_dir +
                                       "/tests/runtime/families/flash/data/flash_template_nvcc.cu -o /dev/null",
                                   output);
    INFO(output);
    REQUIRE(status == 0);
    // One "Function properties" block per kernel: 0 bytes of stack, spill stores and spill loads.
    std::istringstream lines(output);
    int kernels = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.find("spill stores") == std::string::npos) continue;
      ++kernels;
      CHECK(line.find("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads") != std::string::npos);
    }
    CHECK(kernels == 4);
  }
}
