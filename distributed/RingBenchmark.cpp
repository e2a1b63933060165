#include "distributed/RingBenchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "distributed/MpiRing.h"
#include "runtime/core/Mods.h"

namespace attnc::distributed {

namespace {

Tensor random_tensor(std::mt19937& rng, DType dtype, std::vector<int64_t> shape) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::vector<float> values(static_cast<size_t>(t.numel()));
  for (float& x : values) x = uniform(rng);
  copy_into(Tensor::from_data(values.data(), DType::F32, t.shape()), t);
  return t;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// A barrier the waiting ranks sleep through (MPI_Barrier spins and would steal the root's cores).
void sleeping_barrier(MPI_Comm comm) {
  MPI_Request request;
  MPI_Ibarrier(comm, &request);
  int done = 0;
  while (!done) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

RingBenchmarkResult benchmark_ring(MPI_Comm comm, const RingBenchmarkConfig& config) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  RingBenchmarkResult result;
  result.ranks = ranks;

  // Every rank draws the same whole tensors and keeps its shard (no scatter in the timing).
  std::mt19937 rng(config.seed);
  const Tensor q = random_tensor(rng, config.dtype, {config.batch, config.heads, config.length, config.head_dim});
  const Tensor k = random_tensor(rng, config.dtype, {config.batch, config.kv_heads, config.length, config.head_dim});
  const Tensor v = random_tensor(rng, config.dtype, {config.batch, config.kv_heads, config.length, config.head_dim});
  const RingGeometry geometry = RingGeometry::self(config.length, ranks, config.layout);
  const Tensor q_shard = geometry.q.extract(q, rank, 2), k_shard = geometry.kv.extract(k, rank, 2),
               v_shard = geometry.kv.extract(v, rank, 2);
  const Mod causal = causal_mod();
  AttentionOptions options;
  if (config.causal) options.mask_mod = &causal;
  RingOptions ring;
  ring.flash.num_threads = config.threads_per_rank;
  ring.stats = &result.root_stats;
  Tensor out_shard =
      Tensor::empty(DType::F32, {config.batch, config.heads, geometry.q.shard_length(rank), config.head_dim});

  std::vector<double> ring_times;
  for (int i = 0; i < std::max(config.repeats, 1); ++i) {
    MPI_Barrier(comm);
    const auto start = std::chrono::steady_clock::now();
    ring_attention(comm, q_shard, k_shard, v_shard, out_shard, geometry, options, ring);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), slowest = 0;
    MPI_Allreduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    ring_times.push_back(slowest);
  }

  std::vector<double> single_times;
  Tensor single = Tensor::empty(DType::F32, {config.batch, config.heads, config.length, config.head_dim});
  if (rank == 0) {
    FlashOptions flash;
    flash.num_threads = config.threads_single;
    for (int i = 0; i < std::max(config.repeats, 1); ++i) {
      const auto start = std::chrono::steady_clock::now();
      flash_attention(q, k, v, single, options, flash);
      single_times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  sleeping_barrier(comm);
  if (rank != 0) return result;

  result.ring_seconds = median(ring_times);
  result.single_seconds = median(single_times);
  result.overhead = result.ring_seconds / result.single_seconds;
  const Tensor mine = geometry.q.extract(single, 0, 2);
  const std::vector<float> a = mine.to_float_vector(), b = out_shard.to_float_vector();
  for (size_t i = 0; i < a.size(); ++i) result.max_error = std::max(result.max_error, double(std::fabs(a[i] - b[i])));
  return result;
}

}  // namespace attnc::distributed
