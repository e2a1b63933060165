#pragma once
// The CPU backend's code generator: pure functions from IR to an llvm::Module. For one optimised mod
// it emits the tile function (the score mod or mask mod applied to a tile of fp32 scores in place,
// the loop over keys written as explicit host-width vectors) and, for masks, the tile classifier;
// for tests it emits a point function that evaluates any expression once. Every operation follows
// compiler/Semantics.h exactly, so the JIT'd code agrees bit for bit with the interpreter, except
// that the vector key loop may compute transcendental functions with libmvec (CodegenTarget::
// vector_math), which stays within a few ulp of libm.
//
// Nothing here runs or links code: runtime/llvm/LlvmJit.cpp optimises and compiles what this
// returns. The code generator lives in runtime/llvm/ (not compiler/) so that LLVM's headers and
// libraries stay in the one folder the build compiles only when LLVM is found; this header names
// LLVM types only by forward declaration.
//
// The generated functions have C ABIs of runtime/core/CpuModAbi.h:
//   void tile(float* scores, int64_t ld, int32_t rows, int32_t cols, int32_t q_first, int32_t kv_first,
//             const TilePosition* at, const CpuParam* params, int32_t check_bounds, CpuBoundsReport* report);
//   int32_t classify(int32_t q_first, int32_t q_last, int32_t kv_first, int32_t kv_last,
//                    const TilePosition* at, const CpuParam* params);
//   void point(const int32_t* builtins /* indexed by ir::Builtin; the score slot unused */, float score,
//              const CpuParam* params, int32_t check_bounds, CpuBoundsReport* report,
//              int64_t* int_result /* Bool, Int, Int64 */, float* float_result /* Float */);

#include <memory>
#include <span>
#include <string>

#include "compiler/DType.h"
#include "compiler/IR.h"
#include "compiler/Module.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace attnc::jit {

// The machine the code is generated for (the host, as the JIT detects it).
struct CodegenTarget {
  std::string triple;
  std::string data_layout;
  std::string cpu;       // e.g. "skylake-avx512"
  std::string features;  // e.g. "+avx512f,+avx2,..."
  int vector_width = 4;  // fp32 lanes the tile loop handles at once: 16 with AVX-512, 8 with AVX
  // Whether the JIT resolves glibc's libmvec AVX-512 functions (_ZGVeN16v_tanhf, ...): with 16 lanes
  // the tile loop then computes exp, log, tanh, ... on whole vectors (within a few ulp of libm)
  // instead of one scalar libm call per lane.
  bool vector_math = false;
};

// The module of optimised mod `def` (no ModCall nodes) whose tensor parameters are stored as
// `storage` (indexed like def.params; scalars' entries ignored): a tile function named `tile_name`
// and, for mask mods, a classifier named `classify_name` compiled from ir::build_tile_classifier.
std::unique_ptr<llvm::Module> generate_mod_module(llvm::LLVMContext& context, const ir::ModDef& def,
                                                  std::span<const DType> storage, const CodegenTarget& target,
                                                  const std::string& tile_name, const std::string& classify_name);

// A module with one point function named `name` that evaluates `expr` (any type, Int64, LoadRange
// and the tile builtins included; no ModCall) once. Used by the differential tests.
std::unique_ptr<llvm::Module> generate_point_module(llvm::LLVMContext& context, const ir::Expr& expr,
                                                    std::span<const DType> storage, const CodegenTarget& target,
                                                    const std::string& name);

}  // namespace attnc::jit
