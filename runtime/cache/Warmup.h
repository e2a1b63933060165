#pragma once
// Warming a kernel cache: compiling a list of kernels into it ahead of time, in parallel, as a
// deployment step (`attnc warmup`). Generic over the backend: each job says how to make its key
// and how to compile it. Progress goes to a callback, never to a stream.

#include <functional>
#include <string>
#include <vector>

#include "runtime/cache/KernelCache.h"

namespace attnc {

struct WarmupJob {
  std::string label;                    // what the user asked for, for progress and failure reports
  std::function<KernelKey()> make_key;  // may throw (a mod file with errors, an unsupported config)
  KernelCache::Compiler compile;
};

struct WarmupOutcome {
  enum class Status { Compiled, Cached, Failed };
  std::string label;
  Status status = Status::Failed;
  std::string hash;    // the key's hash, when the key could be made
  std::string reason;  // for Failed: the error's message
  double seconds = 0;  // wall time of this job
};

struct WarmupSummary {
  std::vector<WarmupOutcome> outcomes;  // in the order of the jobs
  size_t compiled = 0, cached = 0, failed = 0;
  double seconds = 0;
  size_t threads = 0;  // worker threads used: at most one per job
};

// Runs every job through `cache` on `threads` worker threads (at least 1). `on_done` is called
// once per finished job, from a worker, one call at a time, with the number finished so far.
// A job fails when its key or compile throws, or when its kernel could not be written to disk.
WarmupSummary warm_cache(KernelCache& cache, const std::vector<WarmupJob>& jobs, int threads,
                         const std::function<void(const WarmupOutcome&, size_t done, size_t total)>& on_done = {});

}  // namespace attnc
