#include "bench/suite/FmaPeak.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "bench/suite/Timing.h"

namespace attnc::bench {

namespace {

// One loop: runs `iterations` rounds of its block of independent multiply-adds.
using LoopBody = void (*)(uint64_t iterations);

#if defined(__x86_64__)

// 16 accumulators zmm0..zmm15 += zmm16 * zmm17. Inputs 1.0 and 2^-20 keep every value finite.
__attribute__((target("avx512f"))) void avx512_fp32_loop(uint64_t iterations) {
  const float a = 1.0f, b = 0x1p-20f;
  asm volatile(
      "vbroadcastss (%[a]), %%zmm16\n\t"
      "vbroadcastss (%[b]), %%zmm17\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t"
      "vmovaps %%zmm0, %%zmm2\n\t"
      "vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t"
      "vmovaps %%zmm0, %%zmm5\n\t"
      "vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t"
      "vmovaps %%zmm0, %%zmm8\n\t"
      "vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t"
      "vmovaps %%zmm0, %%zmm11\n\t"
      "vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t"
      "vmovaps %%zmm0, %%zmm14\n\t"
      "vmovaps %%zmm0, %%zmm15\n\t"
      "1:\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm0\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm1\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm2\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm3\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm4\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm5\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm6\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm7\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm8\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm9\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm10\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm11\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm12\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm13\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm14\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm15\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(iterations)
      : [a] "r"(&a), [b] "r"(&b)
      : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12",
        "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "cc", "memory");
}

// 12 accumulators ymm0..ymm11 += ymm12 * ymm13 (16 ymm registers without AVX-512).
__attribute__((target("avx2,fma"))) void avx2_fp32_loop(uint64_t iterations) {
  const float a = 1.0f, b = 0x1p-20f;
  asm volatile(
      "vbroadcastss (%[a]), %%ymm12\n\t"
      "vbroadcastss (%[b]), %%ymm13\n\t"
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t"
      "vmovaps %%ymm0, %%ymm2\n\t"
      "vmovaps %%ymm0, %%ymm3\n\t"
      "vmovaps %%ymm0, %%ymm4\n\t"
      "vmovaps %%ymm0, %%ymm5\n\t"
      "vmovaps %%ymm0, %%ymm6\n\t"
      "vmovaps %%ymm0, %%ymm7\n\t"
      "vmovaps %%ymm0, %%ymm8\n\t"
      "vmovaps %%ymm0, %%ymm9\n\t"
      "vmovaps %%ymm0, %%ymm10\n\t"
      "vmovaps %%ymm0, %%ymm11\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(iterations)
      : [a] "r"(&a), [b] "r"(&b)
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12",
        "ymm13", "cc", "memory");
}

// 16 accumulators zmm0..zmm15 += dot(zmm16, zmm17) over bf16 pairs; each 32-bit lane of the inputs
// holds two bf16 values (0x3F80: 1.0, 0x3580: 2^-20).
__attribute__((target("avx512f,avx512bf16"))) void avx512_bf16_loop(uint64_t iterations) {
  const uint32_t a = 0x3F803F80u, b = 0x35803580u;
  asm volatile(
      "vbroadcastss (%[a]), %%zmm16\n\t"
      "vbroadcastss (%[b]), %%zmm17\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t"
      "vmovaps %%zmm0, %%zmm2\n\t"
      "vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t"
      "vmovaps %%zmm0, %%zmm5\n\t"
      "vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t"
      "vmovaps %%zmm0, %%zmm8\n\t"
      "vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t"
      "vmovaps %%zmm0, %%zmm11\n\t"
      "vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t"
      "vmovaps %%zmm0, %%zmm14\n\t"
      "vmovaps %%zmm0, %%zmm15\n\t"
      "1:\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm0\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm1\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm2\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm3\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm4\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm5\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm6\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm7\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm8\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm9\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm10\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm11\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm12\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm13\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm14\n\t"
      "vdpbf16ps %%zmm16, %%zmm17, %%zmm15\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(iterations)
      : [a] "r"(&a), [b] "r"(&b)
      : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", "zmm12",
        "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "cc", "memory");
}

#endif

struct LoopSpec {
  FmaLoop loop;
  int instructions_per_iteration = 0;
  LoopBody body = nullptr;
};

LoopSpec loop_spec(const char* name, const char* instruction, const char* dtype, int flops_per_instruction,
                   int instructions_per_iteration) {
  LoopSpec spec;
  spec.loop.name = name;
  spec.loop.instruction = instruction;
  spec.loop.dtype = dtype;
  spec.loop.flops_per_instruction = flops_per_instruction;
  spec.instructions_per_iteration = instructions_per_iteration;
  return spec;
}

std::vector<LoopSpec> loop_specs() {
  std::vector<LoopSpec> specs = {
      loop_spec("avx512-fp32", "vfmadd231ps zmm", "fp32", 32, 16),
      loop_spec("avx2-fp32", "vfmadd231ps ymm", "fp32", 16, 12),
      loop_spec("avx512-bf16", "vdpbf16ps zmm", "bf16", 64, 16),
  };
#if defined(__x86_64__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the registers (XCR0).
  auto offer = [](LoopSpec& spec, bool supported, LoopBody body, const char* needs) {
    if (supported) {
      spec.body = body;
      spec.loop.available = true;
    } else {
      spec.loop.unavailable_reason = std::string("this CPU lacks ") + needs;
    }
  };
  offer(specs[0], __builtin_cpu_supports("avx512f"), avx512_fp32_loop, "AVX-512F");
  offer(specs[1], __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), avx2_fp32_loop, "AVX2 and FMA");
  offer(specs[2], __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"), avx512_bf16_loop,
        "AVX512-BF16");
#else
  for (LoopSpec& spec : specs) spec.loop.unavailable_reason = "not an x86-64 build";
#endif
  return specs;
}

// Runs `body` for `iterations` on `threads` threads started together; the seconds from the start
// until the last one finished.
double run_on_threads(LoopBody body, uint64_t iterations, int threads) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      ++ready;
      while (!go) std::this_thread::yield();
      body(iterations);
    });
  }
  while (ready < threads) std::this_thread::yield();
  Clock::time_point start = Clock::now();
  go = true;
  for (std::thread& thread : pool) thread.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::optional<double> FmaPeaks::peak(const std::string& dtype) const {
  std::optional<double> best;
  for (const FmaLoop& loop : loops) {
    if (loop.available && loop.dtype == dtype) best = std::max(best.value_or(0.0), loop.gflops);
  }
  return best;
}

FmaPeaks measure_fma_peaks(int threads) {
  FmaPeaks peaks;
  peaks.threads = std::max(threads, 1);
  for (LoopSpec& spec : loop_specs()) {
    if (spec.body != nullptr) {
      // Calibrate on one thread (which also lets the clock ramp up), then aim at ~30 ms a run.
      uint64_t iterations = 1 << 16;
      double seconds = 0;
      while ((seconds = run_on_threads(spec.body, iterations, 1)) < 0.005) iterations *= 4;
      iterations = std::max<uint64_t>(1, uint64_t(double(iterations) * 0.03 / seconds));
      const double flops =
          double(iterations) * spec.instructions_per_iteration * spec.loop.flops_per_instruction * peaks.threads;
      for (int run = 0; run < 3; ++run) {
        spec.loop.gflops =
            std::max(spec.loop.gflops, flops / run_on_threads(spec.body, iterations, peaks.threads) * 1e-9);
      }
    }
    peaks.loops.push_back(spec.loop);
  }
  return peaks;
}

}  // namespace attnc::bench
