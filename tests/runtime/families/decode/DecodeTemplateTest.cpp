// The decode template (runtime/families/decode/decode_attention.cuh) run under the host emulation
// (runtime/emulation/HostEmulation.h) with GENERATED mod code (every built-in mod and a composition,
// tests/generators/GenerateTestMods.cpp), against the reference attention of each batch row: GQA
// 1, 4 and 8, 1 to 16 query rows, non-zero query positions, batches of sequences of different
// lengths that end mid-page, empty sequences, contiguous and paged K/V behind randomly permuted
// block tables (page sizes 16 to 128), one split and several (the LSE merge), and every warp layout
// the launcher picks. Keys and pages a kernel must not read hold NaN.

#include <catch2/catch.hpp>

#include "tests/runtime/families/decode/DecodeTesting.h"
#include "tests/support/AttentionComparison.h"

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "attnc_test_mods.cuh"
#include "runtime/core/Mods.h"
#include "runtime/cuda/PackModParams.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/decode/decode_attention.cuh"

using namespace attnc;
using namespace attnc::decode_test;
namespace emu = attnc::host_emulation;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;

namespace {

std::vector<ir::ParamBinding> host_bindings(const Mod* mod) {
  if (mod == nullptr) return {};
  ir::Environment env;
  mod->bind_into(env);
  return env.params;
}

struct Layout {
  int warps_m, warps_n, stages;
};

// Runs the split kernel (and the merge when num_splits > 1) with traits Gen; returns out and lse.
template <class Gen, class Elem, int D, int WM, int WN, int STAGES>
void run_template(const DecodeCase& c, const DecodeInputs& in, const Mod* score, const Mod* mask, int num_splits,
                  Tensor& out, Tensor& lse, emu::LaunchStats* stats = nullptr) {
  REQUIRE(std::string(Gen::kScoreSignature) == (score ? score->signature().hex() : "none"));
  REQUIRE(std::string(Gen::kMaskSignature) == (mask ? mask->signature().hex() : "none"));
  using Split = attnc_decode::DecodeSplit<Gen, Elem, D, D, WM, WN, STAGES>;
  using Merge = attnc_decode::DecodeMerge<Gen, Elem, D>;
  const ir::CudaModSource layout =
      ir::generate_cuda_mods(score ? &score->def() : nullptr, score ? score->storage_types() : std::vector<DType>{},
                             mask ? &mask->def() : nullptr, mask ? mask->storage_types() : std::vector<DType>{});
  REQUIRE(layout.params_size == sizeof(typename Gen::Params));
  const std::vector<unsigned char> bytes = cuda::pack_mod_params(layout, host_bindings(score), host_bindings(mask));

  out = Tensor::empty(c.dtype, {c.batch, c.heads, c.q_len, D});
  lse = Tensor::empty(DType::F32, {c.batch, c.heads, c.q_len});
  poison(out);
  poison(lse);
  const int rows_per_kv_head = c.heads / c.kv_heads * c.q_len;
  const int row_chunks = (rows_per_kv_head + Split::kRows - 1) / Split::kRows;
  Tensor partial_out = Tensor::empty(DType::F32, {c.batch, c.heads, c.q_len, num_splits, D});
  Tensor partial_lse = Tensor::empty(DType::F32, {c.batch, c.heads, c.q_len, num_splits});
  poison(partial_out);
  poison(partial_lse);
  std::vector<attnc_decode::DecodeRow> rows;
  for (int b = 0; b < c.batch; ++b) rows.push_back({in.kv_row[b], c.kv_lens[b], c.q_offsets[b]});

  attnc_decode::DecodeParams<typename Gen::Params> p{};
  std::memcpy(static_cast<void*>(&p.mods), bytes.data(), bytes.size());
  p.q = in.q.data(), p.out = out.data(), p.lse = static_cast<float*>(lse.data());
  p.q_batch_stride = in.q.stride(0), p.q_head_stride = in.q.stride(1), p.q_row_stride = in.q.stride(2);
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  p.lse_batch_stride = lse.stride(0), p.lse_head_stride = lse.stride(1), p.lse_row_stride = lse.stride(2);
  p.k = in.k.data(), p.v = in.v.data();
  p.k_page_stride = in.k.stride(0), p.k_head_stride = in.k.stride(1), p.k_row_stride = in.k.stride(2);
  p.v_page_stride = in.v.stride(0), p.v_head_stride = in.v.stride(1), p.v_row_stride = in.v.stride(2);
  if (c.page_size > 0) {
    p.block_table = static_cast<const int32_t*>(in.block_table.data());
    p.block_table_stride = in.block_table.stride(0);
    p.page_shift = 0;
    while ((1 << p.page_shift) < c.page_size) ++p.page_shift;
  }
  p.rows = rows.data();
  p.batch = c.batch, p.num_heads = c.heads, p.num_kv_heads = c.kv_heads, p.q_len = c.q_len;
  p.num_splits = num_splits;
  p.row_chunks = row_chunks;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.partial_out = static_cast<float*>(partial_out.data());
  p.partial_lse = static_cast<float*>(partial_lse.data());
  p.bounds = nullptr;
  const emu::Dim3 grid{static_cast<uint32_t>(num_splits), static_cast<uint32_t>(c.kv_heads * row_chunks),
                       static_cast<uint32_t>(c.batch)};
  const emu::LaunchStats split_stats =
      emu::launch(grid, emu::Dim3{WM * WN * 32, 1, 1}, Split::kSharedBytes, [&p] { Split::run(p); });
  if (stats != nullptr) *stats = split_stats;
  if (num_splits > 1) {
    const int64_t out_rows = int64_t{c.batch} * c.heads * c.q_len;
    const emu::Dim3 merge_grid{static_cast<uint32_t>((out_rows + Merge::kRowsPerCta - 1) / Merge::kRowsPerCta), 1, 1};
    emu::launch(merge_grid, emu::Dim3{Merge::kThreads, 1, 1}, 0, [&p] { Merge::run(p); });
  }
}

template <class Gen, class Elem, int D, int WM, int WN, int STAGES>
void check_case(const DecodeCase& c, const Mod* score, const Mod* mask, int num_splits) {
  CAPTURE(c.batch, c.heads, c.kv_heads, c.q_len, c.page_size, c.kv_lens, c.q_offsets, num_splits, WM, WN, STAGES, D);
  DecodeCase with_dim = c;
  with_dim.head_dim = D;
  const DecodeInputs in = make_inputs(with_dim);
  Tensor out, lse;
  run_template<Gen, Elem, D, WM, WN, STAGES>(with_dim, in, score, mask, num_splits, out, lse);
  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  Tensor ref, ref_lse;
  reference(with_dim, in, options, ref, ref_lse);
  const double error = attnc_test::relative_error(out, ref);
  CAPTURE(error);
  CHECK(error < (c.dtype == DType::BF16 ? 1e-2 : 2e-3));
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

// The warp layouts DecodeConfig picks for 16, 32 and 64 rows per CTA, with 2 and 3 stages, and the
// same keys behind a permuted block table of 16-token pages.
template <class Gen>
void check_layouts(const DecodeCase& c, const Mod* score, const Mod* mask, int num_splits) {
  const int rows = c.heads / c.kv_heads * c.q_len;
  if (rows <= 16) check_case<Gen, bf16_t, 64, 1, 4, 2>(c, score, mask, num_splits);
  if (rows <= 32) check_case<Gen, bf16_t, 64, 2, 2, 3>(c, score, mask, num_splits);
  check_case<Gen, bf16_t, 64, 4, 1, 2>(c, score, mask, num_splits);
  DecodeCase paged = c;
  paged.page_size = 16;
  check_case<Gen, bf16_t, 64, 4, 1, 3>(paged, score, mask, num_splits);
}

DecodeCase batch_of(int heads, int kv_heads, int q_len, std::vector<int32_t> lens, int page_size = 0) {
  DecodeCase c;
  c.batch = static_cast<int>(lens.size());
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.q_len = q_len;
  c.kv_lens = lens;
  // The queries are the last q_len tokens of each sequence (as after an append), at least 0.
  for (int32_t len : lens) c.q_offsets.push_back(std::max(0, len - q_len));
  c.page_size = page_size;
  return c;
}

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < 70 + 9 * b ? 0 : i < 150 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("emulated decode matches the reference without mods for every layout, split count and GQA ratio",
          "[runtime][decode][emulation]") {
  for (int kv_heads : {4, 1}) {  // GQA 1 (MHA) and 4
    for (int q_len : {1, 3}) {
      const DecodeCase c = batch_of(4, kv_heads, q_len, {200, 77});
      for (int splits : {1, 3}) check_layouts<Gen_none>(c, nullptr, nullptr, splits);
    }
  }
  SECTION("GQA 8 with 16 query rows: 128 rows per KV head, two chunks of 64") {
    check_case<Gen_none, bf16_t, 64, 4, 1, 2>(batch_of(8, 1, 16, {90}), nullptr, nullptr, 2);
  }
  SECTION("head dim 96: rows of 12 chunks, which the copies walk chunk by chunk") {
    check_case<Gen_none, bf16_t, 96, 1, 4, 2>(batch_of(4, 2, 2, {150, 64}), nullptr, nullptr, 2);
  }
  SECTION("fp16 and head dim 128") {
    DecodeCase c = batch_of(8, 2, 2, {150, 64});
    c.dtype = DType::F16;
    check_case<Gen_none, f16_t, 128, 1, 4, 3>(c, nullptr, nullptr, 2);
    c.dtype = DType::BF16;
    check_case<Gen_none, bf16_t, 128, 2, 2, 2>(c, nullptr, nullptr, 1);
  }
}

TEST_CASE("emulated decode reads pages through permuted block tables for every page size",
          "[runtime][decode][emulation]") {
  for (int page : {16, 32, 64, 128}) {
    CAPTURE(page);
    // Lengths that end mid-page, a whole page, and an empty sequence.
    const DecodeCase c = batch_of(8, 2, 2, {211, page, 0, 5}, page);
    check_case<Gen_none, bf16_t, 64, 1, 4, 2>(c, nullptr, nullptr, 1);
    check_case<Gen_none, bf16_t, 64, 1, 4, 3>(c, nullptr, nullptr, 4);
  }
}

TEST_CASE("emulated decode: empty sequences give 0 and LSE -inf, in one split and in several",
          "[runtime][decode][emulation]") {
  const DecodeCase c = batch_of(4, 2, 2, {0, 0});
  for (int splits : {1, 5}) {
    const DecodeInputs in = make_inputs(c);
    Tensor out, lse;
    run_template<Gen_none, bf16_t, 64, 1, 4, 2>(c, in, nullptr, nullptr, splits, out, lse);
    for (float x : out.to_float_vector()) CHECK(x == 0.0f);
    for (float x : lse.to_float_vector()) CHECK(x == -INFINITY);
  }
}

TEST_CASE("emulated decode matches the reference for every built-in mask mod at query positions",
          "[runtime][decode][emulation]") {
  // q_len 4 at positions len - 4 (decode with speculative tokens), GQA 4.
  const DecodeCase c = batch_of(8, 2, 4, {230, 131});
  const int splits = 3;
  SECTION("causal") {
    const Mod m = causal_mod();
    check_layouts<Gen_causal>(c, nullptr, &m, splits);
  }
  SECTION("causal aligned to the bottom right, with query positions that shift it further") {
    const Mod m = causal_bottom_right_mod();
    check_layouts<Gen_causal_bottom_right>(c, nullptr, &m, splits);
    DecodeCase at_zero = c;
    at_zero.q_offsets = {0, 0};
    check_layouts<Gen_causal_bottom_right>(at_zero, nullptr, &m, splits);
  }
  SECTION("causal sliding window: the splits share the live keys only") {
    const Mod m = sliding_window_mod(50, true);
    check_layouts<Gen_window_causal>(c, nullptr, &m, splits);
    check_layouts<Gen_window_causal>(c, nullptr, &m, 7);
  }
  SECTION("symmetric sliding window, queries in the middle of the keys") {
    const Mod m = sliding_window_mod(40, false);
    DecodeCase middle = c;
    middle.q_offsets = {100, 20};
    check_layouts<Gen_window_symmetric>(middle, nullptr, &m, splits);
  }
  SECTION("prefix LM") {
    const Mod m = prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{90, 7}));
    DecodeCase early = c;
    early.q_offsets = {40, 3};  // rows before the end see the prefix and their causal past
    check_layouts<Gen_prefix_lm>(early, nullptr, &m, splits);
  }
  SECTION("documents") {
    const Mod m = document_mask_mod(document_ids(2, 240));
    check_layouts<Gen_document>(c, nullptr, &m, splits);
  }
}

TEST_CASE("emulated decode matches the reference for every built-in score mod and a composition",
          "[runtime][decode][emulation]") {
  const DecodeCase c = batch_of(8, 2, 2, {230, 131});
  SECTION("ALiBi") {
    const Mod m = alibi_mod(8);
    check_layouts<Gen_alibi>(c, &m, nullptr, 3);
  }
  SECTION("additive bias over (b, h, q_idx, kv_idx)") {
    const Mod m = additive_bias_mod(test::normal_tensor(9, DType::F32, {2, 8, 240, 240}));
    check_layouts<Gen_additive_bias>(c, &m, nullptr, 2);
  }
  SECTION("softcap") {
    const Mod m = softcap_mod(3.0f);
    check_layouts<Gen_softcap>(c, &m, nullptr, 1);
  }
  SECTION("ALiBi after softcap, under causal and documents") {
    const Mod score = compose_score_mods({alibi_mod(8), softcap_mod(5.0f)});
    const Mod mask = and_masks({causal_mod(), document_mask_mod(document_ids(2, 240))});
    check_layouts<Gen_composition>(c, &score, &mask, 3);
  }
}

TEST_CASE("emulated decode never loads EMPTY tiles of a sliding window", "[runtime][decode][emulation]") {
  // 2000 keys, window 100 at the end: 32 tiles of 64 keys, of which 3 are live for the last query.
  const DecodeCase c = batch_of(4, 1, 1, {2000});
  const DecodeInputs in = make_inputs(c);
  const Mod window = sliding_window_mod(100, true);
  Tensor out, lse;
  emu::LaunchStats windowed, full;
  run_template<Gen_window_causal, bf16_t, 64, 1, 4, 2>(c, in, nullptr, &window, 3, out, lse, &windowed);
  run_template<Gen_none, bf16_t, 64, 1, 4, 2>(c, in, nullptr, nullptr, 3, out, lse, &full);
  // Each tile copies 64 keys x 64 dims x 2 bytes for K and for V; Q is 16 rows x 128 bytes per CTA.
  const uint64_t tile_bytes = 2 * 64 * 64 * 2, q_bytes = 3 * 16 * 128;
  CHECK(full.cp_async_bytes == 32 * tile_bytes + q_bytes);
  CHECK(windowed.cp_async_bytes == 3 * tile_bytes + q_bytes);
}

TEST_CASE("emulated decode: a kept NaN key makes its rows NaN and masked rows stay 0 / -inf, across splits",
          "[runtime][decode][emulation]") {
  DecodeCase c = batch_of(4, 2, 2, {300, 300});
  DecodeInputs in = make_inputs(c);
  // Batch row 0 (KV row 1 in the contiguous layout) gets a NaN key 250 in KV head 1 only.
  for (int64_t d = 0; d < 64; ++d) in.k.set_float({1, 1, 250, d}, NAN);
  for (int splits : {1, 3}) {
    CAPTURE(splits);
    Tensor out, lse;
    run_template<Gen_none, bf16_t, 64, 1, 4, 2>(c, in, nullptr, nullptr, splits, out, lse);
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t i = 0; i < 2; ++i) {
        const bool poisoned = h >= 2;  // the heads of KV head 1
        CHECK(std::isnan(lse.get_float({0, h, i})) == poisoned);
        CHECK(std::isnan(out.get_float({0, h, i, 7})) == poisoned);
        CHECK(std::isfinite(lse.get_float({1, h, i})));
      }
    }
    // Queries far past every key under a window of 1: nothing is kept anywhere.
    DecodeCase far = c;
    far.q_offsets = {5000, 5000};
    const Mod window = sliding_window_mod(1, true);
    run_template<Gen_window_causal, bf16_t, 64, 1, 4, 2>(far, in, nullptr, &window, splits, out, lse);
    for (float x : out.to_float_vector()) CHECK(x == 0.0f);
    for (float x : lse.to_float_vector()) CHECK(x == -INFINITY);
  }
}
