// Decoding with KV caches through the runtime API (runtime/Decoding.h): a batch of sequences grown
// token by token (and with speculative blocks) in paged and contiguous caches, read back with
// gather_kv, and attention through the caches against the reference over each sequence's keys at
// its position, for every built-in mod; paged and contiguous give the same bits. On the CPU here;
// the same calls on a GPU run when one is present.

#include "runtime/Decoding.h"

#include <catch2/catch.hpp>

#include "tests/support/AttentionComparison.h"

#include <cstring>
#include <optional>
#include <vector>

#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/reference/ReferenceAttention.h"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;

namespace {

constexpr int kHeads = 8, kKvHeads = 2, kDim = 64;

// Every token ever appended to a sequence, kept on the host for the reference.
struct History {
  std::vector<std::vector<float>> k, v;  // per sequence: (Hkv, len, D), appended in order
  std::vector<int> length;
};

Tensor as_tensor(const std::vector<float>& values, int len, DType dtype) {
  Tensor t = Tensor::empty(dtype, {1, kKvHeads, len, kDim});
  for (int g = 0; g < kKvHeads; ++g) {
    for (int j = 0; j < len; ++j) {
      for (int d = 0; d < kDim; ++d) t.set_float({0, g, j, d}, values[static_cast<size_t>((g * len + j) * kDim + d)]);
    }
  }
  return t;
}

// Appends rows of `k_new` (N, Hkv, T, D) to the history as the caches do.
void record(History& h, const std::vector<int32_t>& seqs, const Tensor& k_new, const Tensor& v_new,
            const std::vector<int32_t>& counts) {
  for (size_t n = 0; n < seqs.size(); ++n) {
    const int s = seqs[n], old = h.length[static_cast<size_t>(s)], add = counts[n];
    std::vector<float> k(static_cast<size_t>(kKvHeads * (old + add) * kDim)), v = k;
    for (int g = 0; g < kKvHeads; ++g) {
      for (int j = 0; j < old + add; ++j) {
        for (int d = 0; d < kDim; ++d) {
          const size_t at = static_cast<size_t>((g * (old + add) + j) * kDim + d);
          if (j < old) {
            k[at] = h.k[static_cast<size_t>(s)][static_cast<size_t>((g * old + j) * kDim + d)];
            v[at] = h.v[static_cast<size_t>(s)][static_cast<size_t>((g * old + j) * kDim + d)];
          } else {
            k[at] = k_new.get_float({static_cast<int64_t>(n), g, j - old, d});
            v[at] = v_new.get_float({static_cast<int64_t>(n), g, j - old, d});
          }
        }
      }
    }
    h.k[static_cast<size_t>(s)] = k;
    h.v[static_cast<size_t>(s)] = v;
    h.length[static_cast<size_t>(s)] = old + add;
  }
}

// The reference for query row n over sequence seqs[n]: the mods see batch index n, q_idx at the
// sequence's end, kv_len its length.
void check_against_reference(const History& h, const std::vector<int32_t>& seqs, const Tensor& query, const Tensor& out,
                             const Tensor& lse, const AttentionOptions& base, DType dtype) {
  const int64_t q_len = query.size(2);
  for (size_t n = 0; n < seqs.size(); ++n) {
    const int s = seqs[n], len = h.length[static_cast<size_t>(s)];
    const int64_t b = static_cast<int64_t>(n);
    Tensor q = Tensor::zeros(DType::F32, {b + 1, kHeads, q_len, kDim});
    Tensor k = Tensor::zeros(DType::F32, {b + 1, kKvHeads, len, kDim}), v = k.contiguous_copy();
    const Tensor ks = as_tensor(h.k[static_cast<size_t>(s)], len, dtype);
    const Tensor vs = as_tensor(h.v[static_cast<size_t>(s)], len, dtype);
    for (int64_t hh = 0; hh < kHeads; ++hh) {
      for (int64_t i = 0; i < q_len; ++i) {
        for (int64_t d = 0; d < kDim; ++d) q.set_float({b, hh, i, d}, query.get_float({b, hh, i, d}));
      }
    }
    for (int64_t g = 0; g < kKvHeads; ++g) {
      for (int64_t j = 0; j < len; ++j) {
        for (int64_t d = 0; d < kDim; ++d) {
          k.set_float({b, g, j, d}, ks.get_float({0, g, j, d}));
          v.set_float({b, g, j, d}, vs.get_float({0, g, j, d}));
        }
      }
    }
    AttentionOptions options = base;
    options.q_offset = query_position(len, q_len);
    Tensor ref_lse;
    const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
    double diff = 0, norm = 0;
    for (int64_t hh = 0; hh < kHeads; ++hh) {
      for (int64_t i = 0; i < q_len; ++i) {
        const float expected = ref_lse.get_float({b, hh, i}), got = lse.get_float({b, hh, i});
        if (std::isinf(expected)) {
          CHECK(got == expected);
        } else {
          CHECK(got == Approx(expected).epsilon(2e-3).margin(2e-3));
        }
        for (int64_t d = 0; d < kDim; ++d) {
          const double e = ref.get_float({b, hh, i, d}), g = out.get_float({b, hh, i, d});
          diff += (e - g) * (e - g);
          norm += e * e;
        }
      }
    }
    CAPTURE(n, s, len);
    CHECK(std::sqrt(diff / std::max(norm, 1e-30)) < (dtype == DType::F32 ? 2e-5 : 1e-2));
  }
}

struct ModCase {
  const char* name;
  std::optional<Mod> score, mask;
};

std::vector<ModCase> every_builtin_mod() {
  std::vector<int32_t> ids(3 * 400);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i % 400 < 150 ? 0 : i % 400 < 260 ? 1 : 2);
  const Tensor doc_ids = Tensor::from_vector(ids, {3, 400});
  return {
      {"none", std::nullopt, std::nullopt},
      {"causal", std::nullopt, causal_mod()},
      {"causal_bottom_right", std::nullopt, causal_bottom_right_mod()},
      {"sliding_window causal 60", std::nullopt, sliding_window_mod(60, true)},
      {"sliding_window symmetric 30", std::nullopt, sliding_window_mod(30, false)},
      {"prefix_lm", std::nullopt, prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{100, 5, 250}))},
      {"document", std::nullopt, document_mask_mod(doc_ids)},
      {"alibi + causal", alibi_mod(kHeads), causal_mod()},
      {"softcap", softcap_mod(3.0f), std::nullopt},
      {"additive_bias", additive_bias_mod(test::normal_tensor(8, DType::F32, {3, kHeads, 400, 400})), std::nullopt},
      {"alibi + window", alibi_mod(kHeads), sliding_window_mod(100, true)},
  };
}

}  // namespace

TEST_CASE("a paged cache grown token by token decodes like the reference for every built-in mod",
          "[runtime][decode][cache]") {
  for (int page : {16, 32, 64, 128}) {
    CAPTURE(page);
    PagedKVCacheConfig config;
    config.num_layers = 2;
    config.num_pages = 3 * (400 / page + 2);
    config.page_size = page;
    config.kv_heads = kKvHeads;
    config.head_dim = kDim;
    config.dtype = DType::BF16;
    config.max_sequences = 3;
    config.max_pages_per_sequence = 400 / page + 2;
    PagedKVCache cache = init_paged_kv_cache(config);
    History h;
    h.k.resize(3);
    h.v.resize(3);
    h.length.assign(3, 0);
    // Prefill: sequences of different lengths (sequence 2 stays empty until later).
    std::vector<int32_t> seqs = {1, 0};
    Tensor k = test::normal_tensor(page, DType::BF16, {2, kKvHeads, 250, kDim});
    Tensor v = test::normal_tensor(page + 1, DType::BF16, {2, kKvHeads, 250, kDim});
    std::vector<int32_t> counts = {250, 183};
    allocate_blocks(cache, 1, 250);
    allocate_blocks(cache, 0, 183);
    append_kv(cache, 1, seqs, k, v, counts);  // layer 1
    record(h, seqs, k, v, counts);
    // Decode steps: one token each for sequences 0 and 1, then a 4-token speculative block for 2.
    for (int step = 0; step < 3; ++step) {
      const Tensor k1 = test::normal_tensor(1000 + step, DType::BF16, {2, kKvHeads, 1, kDim});
      const Tensor v1 = test::normal_tensor(2000 + step, DType::BF16, {2, kKvHeads, 1, kDim});
      allocate_blocks(cache, 0, h.length[0] + 1);
      allocate_blocks(cache, 1, h.length[1] + 1);
      append_kv(cache, 1, seqs, k1, v1);
      record(h, seqs, k1, v1, {1, 1});
    }
    const std::vector<int32_t> spec = {2};
    const Tensor k4 = test::normal_tensor(77, DType::BF16, {1, kKvHeads, 4, kDim});
    allocate_blocks(cache, 2, 4);
    append_kv(cache, 1, spec, k4, k4);
    record(h, spec, k4, k4, {4});
    CHECK(cache.length(1, 0) == 186);
    CHECK(cache.length(0, 0) == 0);  // layer 0 untouched

    // gather_kv gives back what was appended.
    const auto [gk, gv] = gather_kv(cache, 1, 0);
    CHECK(gk.shape() == std::vector<int64_t>{1, kKvHeads, 186, kDim});
    const Tensor expected = as_tensor(h.k[0], 186, DType::BF16);
    CHECK(std::memcmp(gk.data(), expected.data(), static_cast<size_t>(expected.numel()) * 2) == 0);

    // Attention of every sequence, in a shuffled order, with one query row and with four.
    const std::vector<int32_t> order = {2, 0, 1};
    for (int q_len : {1, 4}) {
      const Tensor query = test::normal_tensor(5 + q_len, DType::BF16, {3, kHeads, q_len, kDim});
      for (const ModCase& m : every_builtin_mod()) {
        CAPTURE(m.name, q_len);
        AttentionOptions options;
        options.score_mod = m.score ? &*m.score : nullptr;
        options.mask_mod = m.mask ? &*m.mask : nullptr;
        Tensor lse;
        const Tensor out = paged_attention(query, cache, order, options, &lse, 1);
        check_against_reference(h, order, query, out, lse, options, DType::BF16);
      }
    }
    free_blocks(cache, 1);
    CHECK(cache.length(1, 1) == 0);
  }
}

TEST_CASE("paged and contiguous caches give the same bits for every built-in mod", "[runtime][decode][cache]") {
  const std::vector<int32_t> lengths = {300, 1, 57};
  KVLayerCache contiguous = init_kv_layer_cache(3, kKvHeads, 320, kDim, DType::F32);
  PagedKVCacheConfig config;
  config.num_pages = 40;
  config.page_size = 16;
  config.kv_heads = kKvHeads;
  config.head_dim = kDim;
  config.dtype = DType::F32;
  config.max_sequences = 3;
  config.max_pages_per_sequence = 20;
  PagedKVCache paged = init_paged_kv_cache(config);
  const Tensor k = test::normal_tensor(1, DType::F32, {3, kKvHeads, 300, kDim});
  const Tensor v = test::normal_tensor(2, DType::F32, {3, kKvHeads, 300, kDim});
  append_kv(contiguous, k, v, lengths);
  const std::vector<int32_t> all = {0, 1, 2};
  for (int32_t s : all) allocate_blocks(paged, s, lengths[static_cast<size_t>(s)]);
  append_kv(paged, 0, all, k, v, lengths);
  const Tensor query = test::normal_tensor(3, DType::F32, {3, kHeads, 2, kDim});
  for (const ModCase& m : every_builtin_mod()) {
    CAPTURE(m.name);
    AttentionOptions options;
    options.score_mod = m.score ? &*m.score : nullptr;
    options.mask_mod = m.mask ? &*m.mask : nullptr;
    Tensor a = Tensor::empty(DType::F32, {3, kHeads, 2, kDim}), b = a.contiguous_copy(), lse_a, lse_b;
    cached_attention(query, contiguous, a, options, &lse_a);
    paged_attention(query, paged, all, b, options, &lse_b);
    CHECK(std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * 4) == 0);
    CHECK(std::memcmp(lse_a.data(), lse_b.data(), static_cast<size_t>(lse_a.numel()) * 4) == 0);
  }
}

TEST_CASE("cache calls refuse what would leave the cache, with clear messages", "[runtime][decode][cache]") {
  PagedKVCacheConfig config;
  config.num_pages = 4;
  config.page_size = 16;
  config.kv_heads = kKvHeads;
  config.head_dim = kDim;
  config.dtype = DType::BF16;
  config.max_sequences = 2;
  config.max_pages_per_sequence = 2;
  PagedKVCache cache = init_paged_kv_cache(config);
  const Tensor k = test::normal_tensor(1, DType::BF16, {1, kKvHeads, 20, kDim});
  const std::vector<int32_t> first = {0};
  CHECK_THROWS_WITH(append_kv(cache, 0, first, k, k), Catch::Contains("goes past its capacity of 0 tokens"));
  allocate_blocks(cache, 0, 16);
  CHECK_THROWS_WITH(append_kv(cache, 0, first, k, k), Catch::Contains("appending 20 tokens to sequence 0 of length 0"));
  CHECK_THROWS_WITH(allocate_blocks(cache, 1, 33), Catch::Contains("more than the 2 pages a block-table row holds"));
  CHECK_THROWS_WITH(append_kv(cache, 0, first, test::normal_tensor(1, DType::F16, {1, kKvHeads, 4, kDim}),
                              test::normal_tensor(1, DType::F16, {1, kKvHeads, 4, kDim})),
                    Catch::Contains("must have the cache's dtype and device (bf16 on cpu)"));
  CHECK_THROWS_WITH(append_kv(cache, 0, first, k, k, std::vector<int32_t>{-2}), Catch::Contains("appends -2 tokens"));
  append_kv(cache, 0, first, k, k, std::vector<int32_t>{10});
  const Tensor query = test::normal_tensor(2, DType::BF16, {1, kHeads, 1, kDim});
  AttentionOptions shifted;
  shifted.q_offset = 3;
  CHECK_THROWS_WITH(paged_attention(query, cache, first, shifted), Catch::Contains("options.q_offset must be 0"));
  CHECK_THROWS_WITH(paged_attention(query, cache, std::vector<int32_t>{5}),
                    Catch::Contains("sequence 5 is outside the cache's 2 sequences"));
  CHECK_THROWS_WITH(paged_attention(query, cache, first, {}, nullptr, 1), Catch::Contains("layer 1 is outside"));
  CHECK_THROWS_WITH(init_paged_kv_cache(PagedKVCacheConfig{}), Catch::Contains("must all be at least 1"));
  KVLayerCache contiguous = init_kv_layer_cache(1, kKvHeads, 8, kDim, DType::BF16);
  CHECK_THROWS_WITH(append_kv(contiguous, k, k), Catch::Contains("goes past the cache's capacity of 8 tokens"));
  Tensor out = Tensor::empty(DType::BF16, {2, kHeads, 1, kDim});
  CHECK_THROWS_WITH(cached_attention(test::normal_tensor(1, DType::BF16, {2, kHeads, 1, kDim}), contiguous, out),
                    Catch::Contains("the query has 2 rows but the cache holds 1 sequences"));
}

TEST_CASE("paged decoding on the GPU matches the CPU cache", "[cuda][gpu][decode][cache]") {
  if (!test::gpu_or_warn()) return;
  PagedKVCacheConfig config;
  config.num_pages = 64;
  config.page_size = 16;
  config.kv_heads = kKvHeads;
  config.head_dim = kDim;
  config.dtype = DType::BF16;
  config.max_sequences = 3;
  config.max_pages_per_sequence = 20;
  PagedKVCache host = init_paged_kv_cache(config);
  config.device = Device::Cuda;
  PagedKVCache device = init_paged_kv_cache(config);
  const std::vector<int32_t> seqs = {0, 1, 2}, lengths = {200, 17, 0};
  const Tensor k = test::normal_tensor(1, DType::BF16, {3, kKvHeads, 200, kDim});
  const Tensor v = test::normal_tensor(2, DType::BF16, {3, kKvHeads, 200, kDim});
  for (int32_t s : seqs) {
    allocate_blocks(host, s, lengths[static_cast<size_t>(s)]);
    allocate_blocks(device, s, lengths[static_cast<size_t>(s)]);
  }
  append_kv(host, 0, seqs, k, v, lengths);
  append_kv(device, 0, seqs, cuda::to_device(k), cuda::to_device(v), lengths);
  const auto [hk, hv] = gather_kv(host, 0, 0);
  const auto [dk, dv] = gather_kv(device, 0, 0);
  CHECK(std::memcmp(hk.data(), dk.data(), static_cast<size_t>(hk.numel()) * 2) == 0);
  const Mod window = sliding_window_mod(50, true), alibi = alibi_mod(kHeads);
  AttentionOptions options;
  options.mask_mod = &window;
  options.score_mod = &alibi;
  const Tensor query = test::normal_tensor(3, DType::BF16, {3, kHeads, 1, kDim});
  Tensor host_lse, device_lse;
  const Tensor expected = paged_attention(query, host, seqs, options, &host_lse);
  const Mod window_dev = test::on_device(window), alibi_dev = test::on_device(alibi);
  AttentionOptions device_options;
  device_options.mask_mod = &window_dev;
  device_options.score_mod = &alibi_dev;
  const Tensor got = paged_attention(cuda::to_device(query), device, seqs, device_options, &device_lse);
  CHECK(attnc_test::relative_error(cuda::to_host(got), expected) < 1e-2);
  CHECK(attnc_test::lse_mismatches(cuda::to_host(device_lse), host_lse) == 0);
}
