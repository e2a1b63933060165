// The LLVM JIT itself: host detection, independent code per compilation, freeing code, and (hidden,
// [.benchmark]) the compile time per mod that issue 4 sets a target for (< 50 ms on 2 cores).

#include <catch2/catch.hpp>

#if ATTNC_HAVE_LLVM

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include "compiler/TileClassifier.h"
#include "runtime/core/Mods.h"
#include "runtime/llvm/LlvmJit.h"

using namespace attnc;

namespace {

TilePosition position(int q_len, int kv_len) {
  TilePosition at;
  at.q_len = q_len;
  at.kv_len = kv_len;
  at.num_heads = at.num_kv_heads = 1;
  return at;
}

struct Named {
  const char* name;
  Mod mod;
};

std::vector<Named> builtin_mods() {
  std::vector<int32_t> ids(2 * 256);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i % 256 / 32);
  return {
      {"causal", causal_mod()},
      {"causal_bottom_right", causal_bottom_right_mod()},
      {"sliding_window causal", sliding_window_mod(64, true)},
      {"sliding_window symmetric", sliding_window_mod(64, false)},
      {"alibi", alibi_mod(8)},
      {"prefix_lm", prefix_lm_mod(Tensor::from_vector(std::vector<int32_t>{16, 32}))},
      {"document", document_mask_mod(Tensor::from_vector(ids, {2, 256}))},
      {"additive_bias", additive_bias_mod(Tensor::zeros(DType::F32, {1, 8, 256, 256}))},
      {"softcap", softcap_mod(30.0f)},
  };
}

}  // namespace

TEST_CASE("the JIT targets the host's vectors", "[runtime][llvm]") {
  jit::LlvmJit& jit = jit::LlvmJit::instance();
  CHECK_FALSE(jit.host_cpu().empty());
  const int width = jit.vector_width();
  CHECK((width == 4 || width == 8 || width == 16));
}

TEST_CASE("each compilation is independent code, and dropping one leaves the others working", "[runtime][llvm]") {
  Mod mod = causal_mod();
  std::vector<DType> storage = mod.storage_types();
  jit::CompiledMod first = jit::LlvmJit::instance().compile_mod(mod.def(), storage);
  jit::CompiledMod second = jit::LlvmJit::instance().compile_mod(mod.def(), storage);
  CHECK(first.tile != second.tile);
  REQUIRE(first.classify != nullptr);
  first = {};  // frees the first module's code
  std::vector<float> scores(4 * 4, 1.0f);
  TilePosition at = position(4, 4);
  second.tile(scores.data(), 4, 4, 4, 0, 0, &at, nullptr, 0, nullptr);
  for (int q = 0; q < 4; ++q)
    for (int kv = 0; kv < 4; ++kv) {
      CAPTURE(q, kv);
      CHECK(scores[static_cast<size_t>(q * 4 + kv)] == (kv <= q ? 1.0f : -std::numeric_limits<float>::infinity()));
    }
  CHECK(second.classify(0, 3, 8, 11, &at, nullptr) == static_cast<int32_t>(ir::TileClass::Empty));
  CHECK(second.classify(8, 11, 0, 3, &at, nullptr) == static_cast<int32_t>(ir::TileClass::Full));
  CHECK(second.classify(0, 3, 0, 3, &at, nullptr) == static_cast<int32_t>(ir::TileClass::Partial));
}

TEST_CASE("JIT compile time per built-in mod", "[.benchmark][runtime][llvm]") {
  // Wall time is what a user waits; the thread's CPU time is what the compilation costs when other
  // processes share the cores (the build machine has two).
  auto thread_ms = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
  };
  jit::LlvmJit& jit = jit::LlvmJit::instance();
  jit.compile_mod(causal_mod().def(), causal_mod().storage_types());  // warm up LLVM's lazy state
  std::vector<double> wall_medians, cpu_medians;
  for (const Named& named : builtin_mods()) {
    std::vector<double> wall, cpu;
    std::vector<DType> storage = named.mod.storage_types();
    for (int run = 0; run < 5; ++run) {
      auto start = std::chrono::steady_clock::now();
      double cpu_start = thread_ms();
      jit::CompiledMod compiled = jit.compile_mod(named.mod.def(), storage);
      cpu.push_back(thread_ms() - cpu_start);
      wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      CHECK(compiled.tile != nullptr);
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
    std::printf("  %-26s wall %7.2f ms, cpu %7.2f ms (medians of 5)\n", named.name, wall[2], cpu[2]);
    wall_medians.push_back(wall[2]);
    cpu_medians.push_back(cpu[2]);
  }
  std::sort(wall_medians.begin(), wall_medians.end());
  std::sort(cpu_medians.begin(), cpu_medians.end());
  const double wall_median = wall_medians[wall_medians.size() / 2];
  const double cpu_median = cpu_medians[cpu_medians.size() / 2];
  std::printf(
      "JIT compile time per mod on %s (%d fp32 lanes), median over %zu built-in mods: wall %.2f ms, cpu %.2f ms\n",
      jit.host_cpu().c_str(), jit.vector_width(), wall_medians.size(), wall_median, cpu_median);
  CHECK(cpu_median < 50.0);
}

#endif
