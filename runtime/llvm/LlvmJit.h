#pragma once
// The process-wide LLVM ORC JIT of the CPU backend: takes the modules runtime/llvm/LlvmCodegen.h
// generates, optimises them at O3 for the host CPU (AVX-512 / AVX2 as available), compiles them and
// returns the functions' addresses. Every ORC call lives in LlvmJit.cpp; this header names no LLVM
// type, so runtime/cpu/CpuModProgram.cpp and the tests use it without LLVM's headers. Built only when
// LLVM is found (ATTNC_HAVE_LLVM).
//
// Thread-safe: compilations are serialised (the JIT is shared, and compiling is rare because
// runtime/cpu/CpuModProgram.cpp caches programs); the compiled functions may run on any thread at once.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "compiler/DType.h"
#include "compiler/IR.h"
#include "compiler/Module.h"
#include "runtime/core/CpuModAbi.h"

namespace attnc::jit {

// The C ABIs of the generated functions (runtime/llvm/LlvmCodegen.h describes them).
using TileFunction = void (*)(float* scores, int64_t ld, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
                              const TilePosition* at, const CpuParam* params, int32_t check_bounds,
                              CpuBoundsReport* report);
using ClassifyFunction = int32_t (*)(int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last,
                                     const TilePosition* at, const CpuParam* params);
using PointFunction = void (*)(const int32_t* builtins, float score, const CpuParam* params, int32_t check_bounds,
                               CpuBoundsReport* report, int64_t* int_result, float* float_result);

// Compiled code in the JIT; the code is freed when the last owner drops it.
class JitCode;

struct CompiledMod {
  std::shared_ptr<JitCode> code;
  TileFunction tile = nullptr;
  ClassifyFunction classify = nullptr;  // mask mods only
};

struct CompiledPoint {
  std::shared_ptr<JitCode> code;
  PointFunction function = nullptr;
};

class LlvmJit {
 public:
  // The JIT, created on first use and never destroyed (cached programs may outlive static
  // destructors). RuntimeError when LLVM cannot generate code for this host.
  static LlvmJit& instance();

  // The tile function (and, for masks, the classifier) of optimised mod `def` whose tensor
  // parameters are stored as `storage` (indexed like def.params). Not cached: see
  // compile_cpu_program. RuntimeError when LLVM fails.
  CompiledMod compile_mod(const ir::ModDef& def, std::span<const DType> storage);

  // A function evaluating `expr` once (for the differential tests).
  CompiledPoint compile_point(const ir::Expr& expr, std::span<const DType> storage);

  // The host CPU as LLVM names it ("skylake-avx512") and the tile loop's fp32 lanes (16 with AVX-512).
  const std::string& host_cpu() const;
  int vector_width() const;

  ~LlvmJit();
  LlvmJit(const LlvmJit&) = delete;
  LlvmJit& operator=(const LlvmJit&) = delete;

 private:
  LlvmJit();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnc::jit
