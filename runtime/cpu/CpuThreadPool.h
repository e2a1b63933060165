#pragma once
// A small pool of std::threads for the CPU kernels: parallel_for hands out task indices through
// an atomic counter, so workers that finish short tasks (the early rows of a causal mask) take the
// next one instead of idling. One job runs at a time; the calling thread works as worker 0.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attnc::cpu {

class CpuThreadPool {
 public:
  // A pool of `threads` workers in all, the caller included (at least 1).
  explicit CpuThreadPool(int threads);
  ~CpuThreadPool();
  CpuThreadPool(const CpuThreadPool&) = delete;
  CpuThreadPool& operator=(const CpuThreadPool&) = delete;

  // The process-wide pool, one worker per hardware thread.
  static CpuThreadPool& shared();

  int size() const { return static_cast<int>(threads_.size()) + 1; }

  // Calls body(worker, index) for every index in [0, count), in increasing index order of pick-up,
  // on at most `max_workers` workers (<= 0: all); `worker` is in [0, workers) and no two concurrent
  // calls share one, so it can index per-worker scratch. The first exception thrown by a body stops
  // the hand-out of further indices and is rethrown here. Called from inside a body, it runs serially.
  void parallel_for(int64_t count, int max_workers, const std::function<void(int worker, int64_t index)>& body);

  // The number of workers parallel_for(count, max_workers, ...) uses.
  int workers_for(int64_t count, int max_workers) const;

 private:
  void worker_loop(int id);
  void work(int id);

  std::mutex job_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int job_workers_ = 0;  // workers taking part in the current job, caller included
  int running_ = 0;      // pool threads still busy with the current job
  int64_t count_ = 0;
  const std::function<void(int, int64_t)>* body_ = nullptr;
  std::atomic<int64_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace attnc::cpu
