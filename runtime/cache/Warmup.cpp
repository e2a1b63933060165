#include "runtime/cache/Warmup.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace attnc {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

WarmupOutcome run_job(KernelCache& cache, const WarmupJob& job) {
  WarmupOutcome outcome;
  outcome.label = job.label;
  auto start = std::chrono::steady_clock::now();
  try {
    KernelKey key = job.make_key();
    outcome.hash = key.hash_hex();
    CacheResult result = cache.get_or_compile(key, job.compile);
    if (!result.disk_problem.empty()) {
      outcome.reason = "compiled, but not written to the cache: " + result.disk_problem;
    } else {
      outcome.status =
          result.source == CacheSource::Compiled ? WarmupOutcome::Status::Compiled : WarmupOutcome::Status::Cached;
    }
  } catch (const std::exception& e) {
    outcome.reason = e.what();
  }
  outcome.seconds = seconds_since(start);
  return outcome;
}

}  // namespace

WarmupSummary warm_cache(KernelCache& cache, const std::vector<WarmupJob>& jobs, int threads,
                         const std::function<void(const WarmupOutcome&, size_t, size_t)>& on_done) {
  auto start = std::chrono::steady_clock::now();
  WarmupSummary summary;
  summary.outcomes.resize(jobs.size());
  std::atomic<size_t> next{0};
  std::mutex report_mutex;
  size_t done = 0;
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      WarmupOutcome outcome = run_job(cache, jobs[i]);
      std::lock_guard guard(report_mutex);
      summary.outcomes[i] = outcome;
      ++done;
      if (on_done) on_done(outcome, done, jobs.size());
    }
  };
  size_t count = std::clamp<size_t>(static_cast<size_t>(std::max(threads, 1)), 1, std::max<size_t>(jobs.size(), 1));
  summary.threads = jobs.empty() ? 0 : count;
  std::vector<std::thread> pool;
  for (size_t t = 1; t < count; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& thread : pool) thread.join();
  for (const WarmupOutcome& outcome : summary.outcomes) {
    if (outcome.status == WarmupOutcome::Status::Compiled)
      ++summary.compiled;
    else if (outcome.status == WarmupOutcome::Status::Cached)
      ++summary.cached;
    else
      ++summary.failed;
  }
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace attnc
