#include "runtime/cache/Warmup.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <set>

#include "compiler/Signature.h"
#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

KernelKey key_number(uint64_t i) {
  KernelKey key;
  key.family = "flash";
  key.add("score_mod", ir::Signature{i, ~i}.hex()).add("head_dim", "64").add("arch", "sm_80");
  key.add("nvrtc", "13.0").add("template", "feed");
  return key;
}

}  // namespace

TEST_CASE("warm_cache compiles every job once, in parallel, and reports each outcome", "[runtime][cache][warmup]") {
  KernelCacheOptions options;
  options.use_disk = false;
  KernelCache cache(options);
  std::atomic<int> compiles{0};
  auto compile = [&](const KernelKey& key) {
    ++compiles;
    if (key == key_number(4)) throw RuntimeError("nvrtc failed for kernel 4");
    return CachedKernel{key.hash_hex(), "meta"};
  };
  std::vector<WarmupJob> jobs;
  for (uint64_t i = 0; i < 6; ++i) {
    WarmupJob job{"job " + std::to_string(i), [i] { return key_number(i); }, compile};
    if (i == 2) job.make_key = []() -> KernelKey { throw RuntimeError("mods.attn: no mod named 'foo'"); };
    jobs.push_back(job);
  }
  jobs.push_back(WarmupJob{"job 1 again", [] { return key_number(1); }, compile});  // the same key twice

  std::vector<size_t> done_counts;
  std::set<std::string> labels;
  WarmupSummary summary = warm_cache(cache, jobs, 3, [&](const WarmupOutcome& o, size_t done, size_t total) {
    done_counts.push_back(done);  // calls are serialised, so no lock is needed here
    labels.insert(o.label);
    CHECK(total == 7);
  });
  CHECK(done_counts == std::vector<size_t>{1, 2, 3, 4, 5, 6, 7});
  CHECK(labels.size() == 7);
  REQUIRE(summary.outcomes.size() == 7);
  for (size_t i = 0; i < 7; ++i) CHECK(summary.outcomes[i].label == jobs[i].label);  // in job order
  using Status = WarmupOutcome::Status;
  CHECK(summary.outcomes[2].status == Status::Failed);
  CHECK(summary.outcomes[2].reason == "mods.attn: no mod named 'foo'");
  CHECK(summary.outcomes[2].hash.empty());
  CHECK(summary.outcomes[4].status == Status::Failed);
  CHECK(summary.outcomes[4].reason == "nvrtc failed for kernel 4");
  CHECK(summary.outcomes[4].hash == key_number(4).hash_hex());
  CHECK(summary.failed == 2);
  CHECK(summary.compiled + summary.cached == 5);
  CHECK(summary.cached == 1);  // job 1 and "job 1 again": one compiled, one from the cache
  CHECK(compiles == 5);        // 0, 1, 3, 4 (failed), 5

  SECTION("a second warmup finds everything cached except the failures") {
    WarmupSummary again = warm_cache(cache, jobs, 2);
    CHECK(again.compiled == 0);
    CHECK(again.cached == 5);
    CHECK(again.failed == 2);
    CHECK(compiles == 6);  // kernel 4 was tried again
  }
  SECTION("one thread does the same work") {
    KernelCache fresh(options);
    WarmupSummary serial = warm_cache(fresh, jobs, 1);
    CHECK(serial.compiled == 4);
    CHECK(serial.cached == 1);
    CHECK(serial.failed == 2);
  }
}

TEST_CASE("warm_cache with no jobs reports nothing and succeeds", "[runtime][cache][warmup]") {
  KernelCacheOptions options;
  options.use_disk = false;
  KernelCache cache(options);
  WarmupSummary summary = warm_cache(cache, {}, 8);
  CHECK(summary.outcomes.empty());
  CHECK(summary.compiled + summary.cached + summary.failed == 0);
}
