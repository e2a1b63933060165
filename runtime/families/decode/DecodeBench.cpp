#include "runtime/families/decode/DecodeBench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/KvSource.h"
#include "runtime/core/Mods.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuThreadPool.h"
#include "runtime/families/decode/DecodeCpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ATTNC_BENCH_AVX512 __attribute__((target("avx512f")))
#endif

namespace attnc::decode {

namespace {

// Random 16-bit or fp32 values, cheaply: the benchmark needs bytes, not statistics.
Tensor random_tensor(std::mt19937& rng, DType dtype, std::vector<int64_t> shape) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const int64_t n = t.numel();
  if (dtype == DType::F32) {
    float* p = static_cast<float*>(t.data());
    for (int64_t i = 0; i < n; ++i) p[i] = uniform(rng);
  } else {
    uint16_t* p = static_cast<uint16_t*>(t.data());
    for (int64_t i = 0; i < n; ++i) {
      const float x = uniform(rng);
      p[i] = dtype == DType::F16 ? float_to_half(x) : float_to_bfloat16(x);
    }
  }
  return t;
}

// Sums the 32-bit words of [data, data + bytes): the reads the probe times. Several independent
// accumulators keep the adds off the critical path, so the loads are the limit.
uint64_t sum_words_scalar(const unsigned char* data, size_t bytes) {
  const size_t words = bytes / 4;
  uint64_t acc[8] = {};
  uint32_t w[8];
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    std::memcpy(w, data + 4 * i, sizeof w);
    for (int j = 0; j < 8; ++j) acc[j] += w[j];
  }
  uint64_t total = std::accumulate(acc, acc + 8, uint64_t{0});
  for (; i < words; ++i) {
    uint32_t x;
    std::memcpy(&x, data + 4 * i, 4);
    total += x;
  }
  return total;
}

#ifdef ATTNC_BENCH_AVX512
ATTNC_BENCH_AVX512 uint64_t sum_words_avx512(const unsigned char* data, size_t bytes) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  size_t i = 0;
  for (; i + 256 <= bytes; i += 256) {
    for (int j = 0; j < 4; ++j) {
      acc[j] = _mm512_add_epi32(acc[j], _mm512_loadu_si512(data + i + 64 * j));
    }
  }
  const __m512i all = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, all);
  uint64_t total = std::accumulate(lanes, lanes + 16, uint64_t{0});
  return total + sum_words_scalar(data + i, bytes - i);
}
#endif

uint64_t sum_words(const unsigned char* data, size_t bytes) {
#ifdef ATTNC_BENCH_AVX512
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return sum_words_avx512(data, bytes);
#endif
  return sum_words_scalar(data, bytes);
}

template <class F>
double seconds_of(F&& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

DecodeBenchResult benchmark_decode_cpu(const DecodeBenchConfig& c) {
  if (c.batch < 1 || c.heads < 1 || c.kv_heads < 1 || c.q_len < 1 || c.kv_len < 1 || c.head_dim < 1) {
    throw RuntimeError(
        fmt::format("benchmark_decode_cpu: every size must be at least 1 (batch {}, heads {}, KV heads "
                    "{}, q_len {}, kv_len {}, head dim {})",
                    c.batch, c.heads, c.kv_heads, c.q_len, c.kv_len, c.head_dim));
  }
  std::mt19937 rng(12);
  const Tensor q = random_tensor(rng, c.dtype, {c.batch, c.heads, c.q_len, c.head_dim});
  const Tensor out = Tensor::empty(c.dtype, {c.batch, c.heads, c.q_len, c.head_dim});
  KvSource kv;
  std::vector<KvBatchRow> rows;
  const int32_t q_offset = static_cast<int32_t>(c.kv_len - c.q_len > 0 ? c.kv_len - c.q_len : 0);
  std::vector<int32_t> table;
  if (c.page_size == 0) {
    kv.k = random_tensor(rng, c.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim});
    kv.v = random_tensor(rng, c.dtype, {c.batch, c.kv_heads, c.kv_len, c.head_dim});
    for (int64_t b = 0; b < c.batch; ++b)
      rows.push_back({static_cast<int32_t>(b), static_cast<int32_t>(c.kv_len), q_offset});
  } else {
    const int64_t per_row = (c.kv_len + c.page_size - 1) / c.page_size;
    const int64_t pages = per_row * c.batch;
    kv.k = random_tensor(rng, c.dtype, {pages, c.kv_heads, c.page_size, c.head_dim});
    kv.v = random_tensor(rng, c.dtype, {pages, c.kv_heads, c.page_size, c.head_dim});
    table.resize(static_cast<size_t>(pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);  // pages scattered as a long-running server's are
    kv.block_table = Tensor::from_data(table.data(), DType::I32, {c.batch, per_row});
    kv.page_size = c.page_size;
    for (int64_t b = 0; b < c.batch; ++b)
      rows.push_back({static_cast<int32_t>(b), static_cast<int32_t>(c.kv_len), q_offset});
  }
  std::optional<Mod> window;
  AttentionOptions options;
  if (c.window > 0) {
    window = sliding_window_mod(c.window, true);
    options.mask_mod = &*window;
  }

  DecodeBenchResult result;
  DecodeCpuStats stats;
  DecodeCpuOptions decode;
  decode.num_threads = c.num_threads;
  decode.stats = &stats;
  auto run_decode = [&] { decode_attention(q, kv, rows, out, options, nullptr, decode); };

  // The ceiling: the same K and V bytes, summed in chunks of 256 KiB over the same workers.
  cpu::CpuThreadPool& pool = cpu::CpuThreadPool::shared();
  const size_t chunk = 256 * 1024;
  const size_t k_bytes = static_cast<size_t>(kv.k.numel()) * dtype_size(c.dtype);
  const size_t chunks_per_tensor = (k_bytes + chunk - 1) / chunk;
  result.threads = pool.workers_for(static_cast<int64_t>(2 * chunks_per_tensor), c.num_threads);
  std::atomic<uint64_t> sink{0};
  auto run_ceiling = [&] {
    pool.parallel_for(static_cast<int64_t>(2 * chunks_per_tensor), c.num_threads, [&](int, int64_t index) {
      const Tensor& t = static_cast<size_t>(index) < chunks_per_tensor ? kv.k : kv.v;
      const size_t at = static_cast<size_t>(index) % chunks_per_tensor * chunk;
      const auto* base = static_cast<const unsigned char*>(t.data());
      sink.fetch_add(sum_words(base + at, std::min(chunk, k_bytes - at)), std::memory_order_relaxed);
    });
  };

  // Decode and ceiling runs alternate, so a change in the memory system's speed during the run (a
  // shared host's other tenants) meets both; the fraction is the median of the pairs' ratios.
  const double element = static_cast<double>(dtype_size(c.dtype));
  result.kv_bytes = 2.0 * double(c.batch * c.kv_heads * c.kv_len * c.head_dim) * element;
  const int64_t touched = c.window > 0 ? std::min<int64_t>(c.kv_len, c.window + c.q_len - 1) : c.kv_len;
  result.read_bytes = 2.0 * double(c.batch * c.kv_heads * touched * c.head_dim) * element;
  run_decode();  // warm-ups
  run_ceiling();
  std::vector<double> fractions;
  for (int r = 0; r < std::max(c.repeats, 1); ++r) {
    result.decode_times.push_back(seconds_of(run_decode));
    result.read_times.push_back(seconds_of(run_ceiling));
    fractions.push_back((result.read_bytes / result.decode_times.back()) / (result.kv_bytes / result.read_times.back()));
  }
  result.decode_seconds = median(result.decode_times);
  result.read_seconds = median(result.read_times);
  result.decode_gbps = result.read_bytes / result.decode_seconds / 1e9;
  result.read_gbps = result.kv_bytes / result.read_seconds / 1e9;
  result.fraction = median(fractions);
  result.num_splits = stats.num_splits;
  result.kernels = stats.kernels;
  return result;
}

}  // namespace attnc::decode
