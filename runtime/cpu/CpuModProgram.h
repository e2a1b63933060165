#pragma once
// A mod compiled for the CPU flash kernel: applies a score mod or a mask mod to a tile of fp32
// scores in place, and (for masks) classifies tiles as EMPTY / FULL / PARTIAL. Two
// implementations stand behind this interface: the LLVM JIT (runtime/LlvmJit.*; the fast path)
// and the interpreter (always available; used when LLVM is absent or disabled). The flash kernel
// only sees this interface.
//
// Programs are compiled per signature and cached in memory (compile_cpu_program); the arguments
// are bound per call through CpuModArgs, so a different window value reuses the program.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/TileClassifier.h"
#include "runtime/core/CpuModAbi.h"
#include "runtime/core/Mod.h"

namespace attnc {

class CpuModProgram {
 public:
  virtual ~CpuModProgram() = default;

  // Score mod: scores[r * ld + c] = score_mod(scores[r * ld + c], b, h, q_first + r, kv_first + c).
  // Mask mod: scores[r * ld + c] = -inf where the mask drops (q_first + r, kv_first + c).
  // With args.check_bounds, an out-of-range tensor index fills `report` (first one wins) and the
  // caller turns it into a RuntimeError; without, indices are clamped.
  virtual void apply(float* scores, int64_t ld, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
                     const TilePosition& at, const CpuModArgs& args, CpuBoundsReport* report) const = 0;

  // Mask mods only: the class of the tile [q_first, q_last] x [kv_first, kv_last] (inclusive).
  virtual ir::TileClass classify(int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last,
                                 const TilePosition& at, const CpuModArgs& args) const = 0;

  // "llvm" or "interpreter".
  virtual const char* backend() const = 0;
};

enum class CpuBackend { Auto, Llvm, Interpreter };

// The program for `mod`'s signature, compiled on first use and cached (thread-safe; concurrent
// requests for one signature compile once). Auto uses LLVM when the build has it.
std::shared_ptr<const CpuModProgram> compile_cpu_program(const Mod& mod, CpuBackend backend = CpuBackend::Auto);

// What the program cache of compile_cpu_program has done since the process started: a test (or a
// module composing mods per call, nn/) counts compilations with it.
struct CpuProgramCacheStats {
  uint64_t hits = 0;      // found compiled (or being compiled by another thread)
  uint64_t compiles = 0;  // compiled (including compilations that failed)
};
CpuProgramCacheStats cpu_program_cache_stats();

// Whether this build has the LLVM JIT.
bool cpu_jit_available();

}  // namespace attnc
