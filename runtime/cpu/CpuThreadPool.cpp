#include "runtime/cpu/CpuThreadPool.h"

#include <algorithm>

namespace attnc::cpu {

namespace {
thread_local bool inside_pool_job = false;
}  // namespace

CpuThreadPool::CpuThreadPool(int threads) {
  for (int id = 1; id < std::max(threads, 1); ++id) threads_.emplace_back([this, id] { worker_loop(id); });
}

CpuThreadPool::~CpuThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

CpuThreadPool& CpuThreadPool::shared() {
  static CpuThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return pool;
}

int CpuThreadPool::workers_for(int64_t count, int max_workers) const {
  int64_t workers = max_workers <= 0 ? size() : std::min(max_workers, size());
  return static_cast<int>(std::max<int64_t>(1, std::min(workers, count)));
}

void CpuThreadPool::work(int id) {
  const bool was_inside = inside_pool_job;
  inside_pool_job = true;
  for (;;) {
    if (failed_.load(std::memory_order_relaxed)) break;
    const int64_t index = next_.fetch_add(1, std::memory_order_relaxed);
    if (index >= count_) break;
    try {
      (*body_)(id, index);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_ = true;
    }
  }
  inside_pool_job = was_inside;
}

void CpuThreadPool::worker_loop(int id) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (id >= job_workers_) continue;
    }
    work(id);
    {
      std::lock_guard lock(mutex_);
      if (--running_ == 0) done_.notify_one();
    }
  }
}

void CpuThreadPool::parallel_for(int64_t count, int max_workers,
                                 const std::function<void(int worker, int64_t index)>& body) {
  if (count <= 0) return;
  const int workers = workers_for(count, max_workers);
  if (workers == 1 || inside_pool_job) {
    // Nested or single-worker: no hand-off needed. Worker 0 is the caller itself.
    for (int64_t index = 0; index < count; ++index) body(0, index);
    return;
  }
  std::lock_guard job_lock(job_mutex_);
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    next_ = 0;
    failed_ = false;
    error_ = nullptr;
    job_workers_ = workers;
    running_ = workers - 1;
    ++generation_;
  }
  wake_.notify_all();
  work(0);
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace attnc::cpu
