#include "runtime/families/linear/LinearBenchmark.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "runtime/cpu/AlignedBuffer.h"
#include "runtime/cpu/CpuMicroKernels.h"
#include "runtime/cpu/CpuThreadPool.h"
#include "runtime/families/linear/LinearCpu.h"

namespace attnc {

namespace {

Tensor random_tensor(std::mt19937& rng, DType dtype, std::vector<int64_t> shape) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Tensor t = Tensor::empty(dtype, std::move(shape));
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    const float x = uniform(rng);
    switch (dtype) {
      case DType::F32: static_cast<float*>(t.data())[i] = x; break;
      case DType::F16: static_cast<uint16_t*>(t.data())[i] = float_to_half(x); break;
      default: static_cast<uint16_t*>(t.data())[i] = float_to_bfloat16(x); break;
    }
  }
  return t;
}

template <typename F>
double median_seconds(int repeats, F&& run) {
  std::vector<double> times;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

LinearBenchmarkResult benchmark_linear_attention(const LinearBenchmarkConfig& config) {
  const int64_t B = config.batch, H = config.heads, S = config.length, D = config.head_dim, Dv1 = D + 1;
  const int64_t C = config.chunk_size, pairs = B * H;
  std::mt19937 rng(config.seed);
  const Tensor q = random_tensor(rng, config.dtype, {B, H, S, D});
  const Tensor k = random_tensor(rng, config.dtype, {B, H, S, D});
  const Tensor v = random_tensor(rng, config.dtype, {B, H, S, D});
  Tensor out = Tensor::empty(DType::F32, {B, H, S, D});
  LinearAttentionOptions options;
  options.causal = config.causal;
  options.chunk_size = config.chunk_size;

  LinearBenchmarkResult result;
  linear_attention_cpu(q, k, v, out, options, config.num_threads);  // warm-up (and the checks)
  result.seconds =
      median_seconds(config.repeats, [&] { linear_attention_cpu(q, k, v, out, options, config.num_threads); });
  // Per (b, h): the state increments (D x Dv1 x C per key chunk), phi(Q) S, and, causal, the
  // intra-chunk A = phi(Q) phi(K)^T and A V' over whole chunks.
  const int64_t chunks = (S + C - 1) / C;
  const int64_t state_chunks = config.causal ? std::max<int64_t>(chunks - 1, 0) : chunks;
  int64_t per_pair = state_chunks * C * D * Dv1 + S * D * Dv1;
  if (config.causal) per_pair += S * C * D + S * C * Dv1;
  result.flops = 2 * pairs * per_pair;
  result.gflops = static_cast<double>(result.flops) / result.seconds / 1e9;

  // The ceiling: phi(Q) [S x D] times [D x Dv1] for every (b, h), on the same threads.
  const cpu::CpuMicroKernels& kernels = cpu::best_micro_kernels();
  cpu::CpuThreadPool& pool = cpu::CpuThreadPool::shared();
  cpu::AlignedBuffer<float> a(static_cast<size_t>(S * D)), b(static_cast<size_t>(D * Dv1));
  std::fill(a.get(), a.get() + S * D, 0.5f);
  std::fill(b.get(), b.get() + D * Dv1, 0.25f);
  const int workers = pool.workers_for(pairs, config.num_threads);
  std::vector<cpu::AlignedBuffer<float>> c;
  for (int w = 0; w < workers; ++w) c.emplace_back(static_cast<size_t>(S * Dv1));
  const double gemm_seconds = median_seconds(config.repeats, [&] {
    pool.parallel_for(pairs, workers, [&](int worker, int64_t) {
      kernels.gemm(static_cast<int32_t>(S), static_cast<int32_t>(Dv1), static_cast<int32_t>(D), a.get(), D, b.get(),
                   Dv1, c[static_cast<size_t>(worker)].get(), Dv1, false);
    });
  });
  result.sgemm_gflops = static_cast<double>(2 * pairs * S * D * Dv1) / gemm_seconds / 1e9;
  result.fraction = result.gflops / result.sgemm_gflops;
  return result;
}

}  // namespace attnc
