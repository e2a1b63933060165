// The CPU decode kernel (runtime/families/decode/DecodeCpu.h) against the reference attention of each
// batch row: every built-in mod, GQA 1/4/8, 1 to 16 query rows at cache positions, batches of
// sequences of different lengths (mid-page ends, empty sequences), contiguous and paged K/V behind
// permuted block tables with page sizes 16 to 128, fp32/fp16/bf16, the AVX-512 and the scalar
// kernels, one split and several; paged and contiguous give identical bits; NaN and fully masked rows
// follow docs/semantics.md; bad inputs raise clear errors.

#include "runtime/families/decode/DecodeCpu.h"

#include <catch2/catch.hpp>

#include "tests/runtime/families/decode/DecodeTesting.h"
#include "tests/support/AttentionComparison.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/families/decode/DecodeCpuKernels.h"
#include "runtime/families/flash/FlashCpu.h"

using namespace attnc;
using namespace attnc::decode;
using namespace attnc::decode_test;

namespace {

DecodeCase batch_of(int heads, int kv_heads, int q_len, std::vector<int32_t> lens, int page_size = 0,
                    DType dtype = DType::BF16) {
  DecodeCase c;
  c.batch = static_cast<int>(lens.size());
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.q_len = q_len;
  c.kv_lens = lens;
  for (int32_t len : lens) c.q_offsets.push_back(std::max(0, len - q_len));
  c.page_size = page_size;
  c.dtype = dtype;
  return c;
}

KvSource source_of(const DecodeCase& c, const DecodeInputs& in) {
  KvSource kv;
  kv.k = in.k;
  kv.v = in.v;
  if (c.page_size > 0) {
    kv.block_table = in.block_table;
    kv.page_size = c.page_size;
  }
  return kv;
}

std::vector<KvBatchRow> rows_of(const DecodeCase& c, const DecodeInputs& in) {
  std::vector<KvBatchRow> rows;
  for (int b = 0; b < c.batch; ++b) rows.push_back({in.kv_row[b], c.kv_lens[b], c.q_offsets[b]});
  return rows;
}

struct Result {
  Tensor out, lse;
  DecodeCpuStats stats;
};

Result run(const DecodeCase& c, const DecodeInputs& in, const AttentionOptions& options, DecodeCpuOptions decode = {}) {
  Result r;
  r.out = Tensor::empty(DType::F32, {c.batch, c.heads, c.q_len, c.head_dim});
  poison(r.out);
  decode.stats = &r.stats;
  const std::vector<KvBatchRow> rows = rows_of(c, in);
  decode_attention(in.q, source_of(c, in), rows, r.out, options, &r.lse, decode);
  return r;
}

void check_case(const DecodeCase& c, const Mod* score, const Mod* mask, int splits = 0, bool scalar = false) {
  CAPTURE(c.batch, c.heads, c.kv_heads, c.q_len, c.page_size, c.kv_lens, c.q_offsets, splits, scalar,
          dtype_name(c.dtype));
  const DecodeInputs in = make_inputs(c);
  AttentionOptions options;
  options.score_mod = score;
  options.mask_mod = mask;
  DecodeCpuOptions decode;
  decode.num_splits = splits;
  decode.force_scalar = scalar;
  const Result got = run(c, in, options, decode);
  Tensor ref, ref_lse;
  reference(c, in, options, ref, ref_lse);
  const double error = attnc_test::relative_error(got.out, ref);
  CAPTURE(error, got.stats.num_splits);
  // Exact products and fp32 sums give 2e-5, except where bf16 V meets VDPBF16PS: the weights P are
  // rounded to bf16 first (as the flash kernels and the GPU templates round them), 2^-9 relative
  // each, about 1.3e-3 over a row; still under half a bf16 ulp of the output (2^-9 = 2e-3).
  const DecodeCpuKernels* avx = avx512_decode_kernels();
  const bool bf16_weights =
      !scalar && c.dtype == DType::BF16 && avx != nullptr && avx->accumulate_bf16 != nullptr;
  CHECK(error < (bf16_weights ? 2e-3 : 2e-5));
  CHECK(attnc_test::lse_mismatches(got.lse, ref_lse) == 0);
}

void check_everywhere(const DecodeCase& c, const Mod* score, const Mod* mask) {
  for (int splits : {1, 3}) {
    for (bool scalar : {false, true}) check_case(c, score, mask, splits, scalar);
  }
  DecodeCase paged = c;
  paged.page_size = 16;
  check_case(paged, score, mask, 2);
}

Tensor document_ids(int batch, int len) {
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < len; ++i) ids.push_back(i < 70 + 9 * b ? 0 : i < 150 ? 1 : 2);
  }
  return Tensor::from_vector(ids, {batch, len});
}

}  // namespace

TEST_CASE("CPU decode matches the reference for every built-in mod at cache positions", "[runtime][decode][cpu]") {
  const DecodeCase c = batch_of(8, 2, 3, {230, 131, 0});
  SECTION("no mods") { check_everywhere(c, nullptr, nullptr); }
  SECTION("causal") {
    const Mod m = causal_mod();
    check_everywhere(c, nullptr, &m);
  }
  SECTION("causal aligned to the bottom right") {
    const Mod m = causal_bottom_right_mod();
    check_everywhere(c, nullptr, &m);
  }
  SECTION("sliding windows") {
    const Mod causal = sliding_window_mod(50, true), symmetric = sliding_window_mod(40, false);
    check_everywhere(c, nullptr, &causal);
    DecodeCase middle = c;
    middle.q_offsets = {100, 20, 0};
    check_everywhere(middle, nullptr, &symmetric);
  }
  SECTION("prefix LM") {
    const Mod m = prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{90, 7, 1}));
    DecodeCase early = c;
    early.q_offsets = {40, 3, 0};
    check_everywhere(early, nullptr, &m);
  }
  SECTION("documents") {
    const Mod m = document_mask_mod(document_ids(3, 240));
    check_everywhere(c, nullptr, &m);
  }
  SECTION("ALiBi, additive bias and softcap") {
    const Mod alibi = alibi_mod(8), softcap = softcap_mod(3.0f);
    const Mod bias = additive_bias_mod(test::normal_tensor(9, DType::F32, {3, 8, 240, 240}));
    check_everywhere(c, &alibi, nullptr);
    check_everywhere(c, &bias, nullptr);
    check_everywhere(c, &softcap, nullptr);
  }
  SECTION("ALiBi after softcap, under causal and documents") {
    const Mod score = compose_score_mods({alibi_mod(8), softcap_mod(5.0f)});
    const Mod mask = and_masks({causal_mod(), document_mask_mod(document_ids(3, 240))});
    check_everywhere(c, &score, &mask);
  }
}

TEST_CASE("CPU decode covers GQA 1, 4 and 8, 1 to 16 query rows, page sizes and dtypes", "[runtime][decode][cpu]") {
  const Mod window = sliding_window_mod(70, true);
  for (int kv_heads : {8, 2, 1}) {
    for (int q_len : {1, 5, 16}) check_case(batch_of(8, kv_heads, q_len, {300, 45}), nullptr, &window, 2);
  }
  for (int page : {16, 32, 64, 128}) {
    CAPTURE(page);
    check_case(batch_of(4, 1, 2, {211, page, 0, 5}, page), nullptr, &window, 3);
    check_case(batch_of(4, 1, 2, {211, page, 0, 5}, page), nullptr, nullptr, 1);
  }
  for (DType dtype : {DType::F32, DType::F16}) {
    check_case(batch_of(4, 2, 2, {150, 64}, 0, dtype), nullptr, &window, 2);
    check_case(batch_of(4, 2, 2, {150, 64}, 32, dtype), nullptr, nullptr, 2, true);
  }
  SECTION("head dims other than 64, and a value head dim of its own") {
    DecodeCase c = batch_of(4, 2, 2, {100, 37});
    c.head_dim = 40;  // not a multiple of 16: the vector kernels' tails
    check_case(c, nullptr, &window, 2);
    c.head_dim = 128;
    check_case(c, nullptr, nullptr, 1);
  }
}

TEST_CASE("CPU decode through pages gives the same bits as through a contiguous cache", "[runtime][decode][cpu]") {
  const std::vector<Mod> masks = {causal_mod(), causal_bottom_right_mod(), sliding_window_mod(33, true),
                                  sliding_window_mod(20, false),
                                  prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{9, 60}))};
  const std::vector<Mod> scores = {alibi_mod(4), softcap_mod(2.0f)};
  DecodeCase contiguous = batch_of(4, 1, 2, {177, 64});
  DecodeCase paged = contiguous;
  paged.page_size = 16;
  const DecodeInputs a = make_inputs(contiguous), b = make_inputs(paged);
  auto same = [&](const Mod* score, const Mod* mask) {
    AttentionOptions options;
    options.score_mod = score;
    options.mask_mod = mask;
    DecodeCpuOptions decode;
    decode.num_splits = 2;
    const Result x = run(contiguous, a, options, decode), y = run(paged, b, options, decode);
    CHECK(std::memcmp(x.out.data(), y.out.data(), static_cast<size_t>(x.out.numel()) * 4) == 0);
    CHECK(std::memcmp(x.lse.data(), y.lse.data(), static_cast<size_t>(x.lse.numel()) * 4) == 0);
  };
  same(nullptr, nullptr);
  for (const Mod& mask : masks) same(nullptr, &mask);
  for (const Mod& score : scores) same(&score, &masks[0]);
}

TEST_CASE("CPU decode: plain tensors follow attention()'s contract, as the flash kernel does",
          "[runtime][decode][cpu]") {
  const Tensor q = test::normal_tensor(1, DType::BF16, {2, 8, 3, 64});
  const Tensor k = test::normal_tensor(2, DType::BF16, {2, 2, 300, 64});
  const Tensor v = test::normal_tensor(3, DType::BF16, {2, 2, 300, 64});
  const Mod window = sliding_window_mod(100, true), alibi = alibi_mod(8);
  AttentionOptions options;
  options.mask_mod = &window;
  options.score_mod = &alibi;
  options.q_offset = 297;
  Tensor out = Tensor::empty(DType::BF16, {2, 8, 3, 64}), lse;
  decode_attention(q, k, v, out, options, &lse);
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  CHECK(attnc_test::relative_error(out, ref) < 1e-2);
  CHECK(attnc_test::lse_mismatches(lse, ref_lse) == 0);
}

TEST_CASE("CPU decode: the results do not depend on the thread count, and splits skip empty tiles",
          "[runtime][decode][cpu]") {
  const DecodeCase c = batch_of(4, 1, 1, {4000, 3000});
  const DecodeInputs in = make_inputs(c);
  const Mod window = sliding_window_mod(200, true);
  AttentionOptions options;
  options.mask_mod = &window;
  DecodeCpuOptions one, many;
  one.num_threads = 1;
  one.num_splits = many.num_splits = 4;
  const Result x = run(c, in, options, one), y = run(c, in, options, many);
  CHECK(std::memcmp(x.out.data(), y.out.data(), static_cast<size_t>(x.out.numel()) * 4) == 0);
  // The window covers the last 200 keys: 4 tiles of 64 in each row, shared by the splits; the
  // tiles before it are never visited.
  CHECK(x.stats.tiles_computed == 4 + 4);
  CHECK(x.stats.tiles_skipped == 0);
  CHECK(x.stats.num_splits == 4);
}

TEST_CASE("CPU decode: NaN rows are NaN, fully masked rows 0 with LSE -inf, across splits", "[runtime][decode][cpu]") {
  DecodeCase c = batch_of(2, 1, 2, {300, 300}, 0, DType::F32);
  DecodeInputs in = make_inputs(c);
  // A NaN key late in row 0: every query of row 0 keeps it; split 1 of 3 sees it.
  for (int64_t d = 0; d < c.head_dim; ++d) in.k.set_float({1, 0, 250, d}, NAN);
  in.k_rows[0].set_float({0, 0, 250, 0}, NAN);
  const Mod nothing = sliding_window_mod(1, true);  // with query positions past every key: empty
  for (int splits : {1, 3}) {
    CAPTURE(splits);
    DecodeCpuOptions decode;
    decode.num_splits = splits;
    const Result got = run(c, in, {}, decode);
    for (int64_t h = 0; h < 2; ++h) {
      CHECK(std::isnan(got.lse.get_float({0, h, 1})));
      CHECK(std::isnan(got.out.get_float({0, h, 1, 5})));
      CHECK(std::isfinite(got.lse.get_float({1, h, 1})));
    }
    DecodeCase far = c;
    far.q_offsets = {1000, 1000};
    AttentionOptions masked;
    masked.mask_mod = &nothing;
    const Result empty = run(far, in, masked, decode);
    for (float x : empty.out.to_float_vector()) CHECK(x == 0.0f);
    for (float x : empty.lse.to_float_vector()) CHECK(x == -INFINITY);
  }
}

TEST_CASE("CPU decode refuses bad KV sources and rows with clear messages", "[runtime][decode][cpu]") {
  const DecodeCase c = batch_of(4, 1, 1, {40, 20}, 16);
  const DecodeInputs in = make_inputs(c);
  Tensor out = Tensor::empty(DType::F32, {2, 4, 1, 64});
  std::vector<KvBatchRow> rows = rows_of(c, in);
  auto call = [&](const KvSource& kv, const std::vector<KvBatchRow>& r) { decode_attention(in.q, kv, r, out, {}); };
  CHECK_NOTHROW(call(source_of(c, in), rows));

  std::vector<KvBatchRow> bad = rows;
  bad[1].kv_row = 2;
  CHECK_THROWS_WITH(call(source_of(c, in), bad), Catch::Contains("batch row 1 reads KV row 2, outside the 2 rows"));
  bad = rows;
  bad[0].kv_len = 1000;
  CHECK_THROWS_WITH(call(source_of(c, in), bad), Catch::Contains("batch row 0 has 1000 keys"));
  bad = rows;
  bad[0].kv_len = -1;
  CHECK_THROWS_WITH(call(source_of(c, in), bad), Catch::Contains("batch row 0 has -1 keys"));
  bad = rows;
  bad[1].q_offset = -3;
  CHECK_THROWS_WITH(call(source_of(c, in), bad), Catch::Contains("q_offset -3 must be >= 0"));
  bad.pop_back();
  CHECK_THROWS_WITH(call(source_of(c, in), bad), Catch::Contains("1 KV rows were given for the 2 batch rows"));

  // A block table entry outside the pool.
  KvSource kv = source_of(c, in);
  Tensor table = in.block_table.contiguous_copy();
  table.set_int({1, 1}, 999);  // row 1 has 20 keys: its second page is read
  kv.block_table = table;
  CHECK_THROWS_WITH(call(kv, rows), Catch::Contains("block table row 1 entry 1 is page 999, outside the pool"));
  kv.block_table = Tensor::from_vector(std::vector<float>{0, 1}, {1, 2});
  CHECK_THROWS_WITH(call(kv, rows), Catch::Contains("the block table must be an int32 (rows, max_pages) tensor"));
  kv = source_of(c, in);
  kv.page_size = 12;
  CHECK_THROWS_WITH(call(kv, rows), Catch::Contains("the page size 12 must be a power of two"));
}

TEST_CASE("CPU decode reports out-of-range mod indices with bounds checking", "[runtime][decode][cpu]") {
  const DecodeCase c = batch_of(4, 1, 1, {100, 100});
  const DecodeInputs in = make_inputs(c);
  // Ids cover 50 of 100 positions; five documents, so no tile is FULL or EMPTY and the mask runs.
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(i % 50 / 10);
  const Mod doc = document_mask_mod(Tensor::from_vector(ids, {2, 50}));
  AttentionOptions options;
  options.mask_mod = &doc;
  options.check_bounds = true;
  Tensor out = Tensor::empty(DType::F32, {2, 4, 1, 64});
  const std::vector<KvBatchRow> rows = rows_of(c, in);
  CHECK_THROWS_WITH(decode_attention(in.q, source_of(c, in), rows, out, options),
                    Catch::Contains("decode_attention: mod 'document'") &&
                        Catch::Contains("is out of range for dimension 1 of parameter 'ids' (extent 50)"));
}

TEST_CASE("the AVX-512 and scalar decode kernels agree", "[runtime][decode][cpu]") {
  const DecodeCpuKernels* avx = avx512_decode_kernels();
  if (avx == nullptr) {
    WARN("this CPU has no AVX-512: only the scalar decode kernels were tested");
    return;
  }
  const DecodeCpuKernels& scalar = scalar_decode_kernels();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (int dim : {16, 40, 64, 128, 200}) {
    for (int rows : {1, 3, 4, 9}) {
      const int cols = 37;
      std::vector<float> q(size_t(rows) * dim), k(size_t(cols) * dim);
      for (float& x : q) x = normal(rng);
      for (float& x : k) x = normal(rng);
      std::vector<float> s1(size_t(rows) * 64), s2(size_t(rows) * 64);
      std::vector<const void*> k_rows;
      for (int j = 0; j < cols; ++j) k_rows.push_back(k.data() + j * dim);
      // `ahead` (rows to prefetch) cannot change a result; passing real rows checks the addresses
      // it touches under the sanitizers.
      scalar.scores(q.data(), dim, k_rows.data(), DType::F32, rows, cols, dim, s1.data(), 64, nullptr);
      avx->scores(q.data(), dim, k_rows.data(), DType::F32, rows, cols, dim, s2.data(), 64, k_rows.data());
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) CHECK(s2[r * 64 + j] == Approx(s1[r * 64 + j]).epsilon(1e-5).margin(1e-4));
      }
      // bf16 rows, converted in registers.
      const Tensor k16 = test::normal_tensor(dim, DType::BF16, {cols, dim});
      std::vector<const void*> k16_rows;
      for (int j = 0; j < cols; ++j) k16_rows.push_back(static_cast<const uint16_t*>(k16.data()) + j * dim);
      std::vector<float> t1(size_t(rows) * 64), t2(size_t(rows) * 64);
      scalar.scores(q.data(), dim, k16_rows.data(), DType::BF16, rows, cols, dim, t1.data(), 64, nullptr);
      avx->scores(q.data(), dim, k16_rows.data(), DType::BF16, rows, cols, dim, t2.data(), 64, nullptr);
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) CHECK(t2[r * 64 + j] == Approx(t1[r * 64 + j]).epsilon(1e-5).margin(1e-4));
      }
      // bf16 queries against bf16 keys with VDPBF16PS where the CPU has it: the same sums, scaled.
      if (avx->scores_bf16 != nullptr) {
        const Tensor q16 = test::normal_tensor(dim + 2, DType::BF16, {rows, dim});
        std::vector<float> q16_f(size_t(rows) * dim), u1(size_t(rows) * 64), u2(size_t(rows) * 64);
        for (int r = 0; r < rows; ++r) {
          for (int d = 0; d < dim; ++d) q16_f[size_t(r) * dim + d] = q16.get_float({r, d});
        }
        scalar.scores(q16_f.data(), dim, k16_rows.data(), DType::BF16, rows, cols, dim, u1.data(), 64, nullptr);
        avx->scores_bf16(static_cast<const uint16_t*>(q16.data()), dim, k16_rows.data(), rows, cols, dim, 0.5f,
                         u2.data(), 64, k16_rows.data());
        for (int r = 0; r < rows; ++r) {
          for (int j = 0; j < cols; ++j) {
            CHECK(u2[r * 64 + j] == Approx(0.5f * u1[r * 64 + j]).epsilon(1e-5).margin(1e-4));
          }
        }
      }
      std::vector<float> m1(rows, -INFINITY), l1(rows, 0), a1(rows), m2 = m1, l2 = l1, a2(rows);
      s1[3] = -INFINITY;
      s2 = s1;  // the same scores into both
      scalar.softmax(s1.data(), 64, rows, cols, 1.4f, m1.data(), l1.data(), a1.data());
      avx->softmax(s2.data(), 64, rows, cols, 1.4f, m2.data(), l2.data(), a2.data());
      for (int r = 0; r < rows; ++r) {
        CHECK(m2[r] == m1[r]);
        CHECK(l2[r] == Approx(l1[r]).epsilon(1e-6));
        for (int j = 0; j < cols; ++j) CHECK(s2[r * 64 + j] == Approx(s1[r * 64 + j]).epsilon(1e-6).margin(1e-30));
      }
      const Tensor v = test::normal_tensor(dim + 1, DType::F16, {cols, dim});
      std::vector<const void*> v_rows;
      for (int j = 0; j < cols; ++j) v_rows.push_back(static_cast<const uint16_t*>(v.data()) + j * dim);
      std::vector<float> o1(size_t(rows) * dim, 1.0f), o2 = o1;
      scalar.accumulate(s1.data(), 64, v_rows.data(), DType::F16, rows, cols, dim, a1.data(), o1.data(), dim, nullptr);
      avx->accumulate(s1.data(), 64, v_rows.data(), DType::F16, rows, cols, dim, a1.data(), o2.data(), dim,
                      v_rows.data());
      for (size_t i = 0; i < o1.size(); ++i) CHECK(o2[i] == Approx(o1[i]).epsilon(1e-5).margin(1e-5));
      // bf16 V with VDPBF16PS: the weights rounded to bf16, then the same sums as the scalar kernel's
      // on the rounded weights (every product exact, fp32 sums in another order). An odd number of
      // keys (37) leaves the last one without a partner; dims 40 and 200 end mid-vector.
      if (avx->accumulate_bf16 != nullptr) {
        const Tensor v16 = test::normal_tensor(dim + 5, DType::BF16, {cols, dim});
        std::vector<const void*> v16_rows;
        for (int j = 0; j < cols; ++j) v16_rows.push_back(static_cast<const uint16_t*>(v16.data()) + j * dim);
        std::vector<float> rounded = s1;
        for (float& x : rounded) x = bfloat16_to_float(float_to_bfloat16(x));
        std::vector<float> o3(size_t(rows) * dim), o4(size_t(rows) * dim);
        for (size_t i = 0; i < o3.size(); ++i) o3[i] = o4[i] = 0.25f * float(i % 7) - 0.5f;
        scalar.accumulate(rounded.data(), 64, v16_rows.data(), DType::BF16, rows, cols, dim, a1.data(), o3.data(), dim,
                          nullptr);
        avx->accumulate_bf16(s1.data(), 64, v16_rows.data(), rows, cols, dim, a1.data(), o4.data(), dim,
                             v16_rows.data());
        for (size_t i = 0; i < o3.size(); ++i) CHECK(o4[i] == Approx(o3[i]).epsilon(1e-5).margin(1e-5));
      }
    }
  }
  // Conversions of every dtype, with a tail.
  const Tensor x = test::normal_tensor(3, DType::BF16, {37});
  const Tensor y = test::normal_tensor(3, DType::F16, {37});
  std::vector<float> a(37), b(37);
  for (const Tensor& t : {x, y}) {
    scalar.convert(t.data(), t.dtype(), 37, a.data());
    avx->convert(t.data(), t.dtype(), 37, b.data());
    CHECK(a == b);
  }
}
