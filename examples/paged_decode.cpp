// Decoding with a paged KV cache, step by step, through attnc's runtime API (runtime/Decoding.h).
//
// Three sequences share one pool of 16-token pages. Each gets a prompt of its own length (prefill:
// its keys and values appended in one call), then every step appends one new token per live
// sequence and runs one paged_attention call for all of them with a causal sliding window of 48
// tokens and ALiBi. Halfway, one sequence finishes and frees its pages, and a new one takes its slot
// and reuses them. Every step is checked against the reference attention over the keys gather_kv
// reads back, with the query at the sequence's last position. Exits 1 on a mismatch.
//
//   paged_decode [--cuda]     (CPU by default; --cuda runs the cache and the kernels on GPU 0)

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/Decoding.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/reference/ReferenceAttention.h"

using namespace attnc;

namespace {

constexpr int kHeads = 8, kKvHeads = 2, kDim = 64, kPage = 16, kWindow = 48;

Tensor random_tensor(std::mt19937& rng, std::vector<int64_t> shape) {
  std::normal_distribution<float> normal;
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  std::vector<float> values(static_cast<size_t>(count));
  for (float& x : values) x = normal(rng);
  return Tensor::from_vector(values, std::move(shape), DType::BF16);
}

Tensor to(Device device, const Tensor& t) { return device == Device::Cpu ? t : cuda::to_device(t); }
Tensor to_cpu(const Tensor& t) { return t.device() == Device::Cpu ? t : cuda::to_host(t); }

// The largest relative difference between row n of `out` and the reference for sequence `s`.
double step_error(const PagedKVCache& cache, int32_t s, int64_t n, const Tensor& query, const Tensor& out,
                  const Tensor& lse, const Mod& window, const Mod& alibi) {
  const auto [k, v] = gather_kv(cache, 0, s);
  Tensor q = Tensor::empty(DType::BF16, {1, kHeads, 1, kDim});
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t d = 0; d < kDim; ++d) q.set_float({0, h, 0, d}, query.get_float({n, h, 0, d}));
  }
  AttentionOptions options;
  options.mask_mod = &window;
  options.score_mod = &alibi;
  options.q_offset = static_cast<int32_t>(k.size(2)) - 1;  // the new token is the last one
  Tensor ref_lse;
  const Tensor ref = standard_attention(q, k, v, options, &ref_lse);
  double worst = 0;
  for (int64_t h = 0; h < kHeads; ++h) {
    double diff = 0, norm = 0;
    for (int64_t d = 0; d < kDim; ++d) {
      const double e = ref.get_float({0, h, 0, d}), g = out.get_float({n, h, 0, d});
      diff += (e - g) * (e - g);
      norm += e * e;
    }
    worst = std::max(worst, std::sqrt(diff / std::max(norm, 1e-30)));
    worst = std::max(worst, std::fabs(double(lse.get_float({n, h, 0})) - ref_lse.get_float({0, h, 0})) /
                                std::max(1.0, std::fabs(double(ref_lse.get_float({0, h, 0})))));
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  const bool on_cuda = argc > 1 && std::string(argv[1]) == "--cuda";
  const Device device = on_cuda ? Device::Cuda : Device::Cpu;
  try {
    PagedKVCacheConfig config;
    config.num_pages = 40;
    config.page_size = kPage;
    config.kv_heads = kKvHeads;
    config.head_dim = kDim;
    config.dtype = DType::BF16;
    config.device = device;
    config.max_sequences = 3;
    config.max_pages_per_sequence = 12;
    PagedKVCache cache = init_paged_kv_cache(config);

    const Mod window = sliding_window_mod(kWindow, true), alibi = alibi_mod(kHeads);
    Mod window_on = window, alibi_on = alibi;
    if (on_cuda) alibi_on.bind("slopes", cuda::to_device(Tensor::from_vector(alibi_slopes(kHeads))));
    AttentionOptions options;
    options.mask_mod = &window_on;
    options.score_mod = &alibi_on;

    std::mt19937 rng(2026);
    std::vector<int32_t> live = {0, 1, 2};
    const std::vector<int32_t> prompts = {37, 5, 80};
    for (int32_t s : live) {
      const int32_t len = prompts[static_cast<size_t>(s)];
      allocate_blocks(cache, s, len);
      const std::vector<int32_t> one = {s};
      append_kv(cache, 0, one, to(device, random_tensor(rng, {1, kKvHeads, len, kDim})),
                to(device, random_tensor(rng, {1, kKvHeads, len, kDim})));
    }
    std::printf("paged_decode on %s: 3 sequences, prompts 37 / 5 / 80 tokens, %d-token pages, window %d + ALiBi\n",
                device_name(device), kPage, kWindow);

    double worst = 0;
    for (int step = 1; step <= 60; ++step) {
      if (step == 30) {
        // Sequence 1 is done: its pages go back to the pool and a new prompt of 21 tokens takes its slot.
        free_blocks(cache, 1);
        allocate_blocks(cache, 1, 21);
        const std::vector<int32_t> one = {1};
        append_kv(cache, 0, one, to(device, random_tensor(rng, {1, kKvHeads, 21, kDim})),
                  to(device, random_tensor(rng, {1, kKvHeads, 21, kDim})));
        std::printf("step %d: sequence 1 finished and restarted with a 21-token prompt (%lld pages free)\n", step,
                    static_cast<long long>(cache.free_pages()));
      }
      const int64_t n = static_cast<int64_t>(live.size());
      for (int32_t s : live) allocate_blocks(cache, s, cache.length(0, s) + 1);
      append_kv(cache, 0, live, to(device, random_tensor(rng, {n, kKvHeads, 1, kDim})),
                to(device, random_tensor(rng, {n, kKvHeads, 1, kDim})));
      const Tensor query = random_tensor(rng, {n, kHeads, 1, kDim});
      Tensor lse;
      const Tensor out = to_cpu(paged_attention(to(device, query), cache, live, options, &lse));
      const Tensor lse_host = to_cpu(lse);
      for (int64_t i = 0; i < n; ++i) {
        worst =
            std::max(worst, step_error(cache, live[static_cast<size_t>(i)], i, query, out, lse_host, window, alibi));
      }
      if (step % 20 == 0) {
        std::printf("step %d: lengths %d / %d / %d, worst relative error so far %.2e\n", step, cache.length(0, 0),
                    cache.length(0, 1), cache.length(0, 2), worst);
      }
    }
    // bf16 inputs and outputs: the reference agrees to about 1e-2 relative.
    if (worst > 2e-2) {
      std::printf("MISMATCH: worst relative error %.3e\n", worst);
      return 1;
    }
    std::printf("ok: 60 steps match the reference (worst relative error %.2e)\n", worst);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paged_decode: %s\n", e.what());
    return 1;
  }
}
