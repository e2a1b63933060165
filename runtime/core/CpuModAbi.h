#pragma once
// The C ABI between the CPU flash kernel and a compiled mod program (runtime/cpu/CpuModProgram.h):
// where a tile sits, how each bound parameter is passed, and where an out-of-range index is
// reported. The LLVM code generator (runtime/llvm/LlvmCodegen.h) emits functions over exactly
// these structs, and the interpreter program reads them too, so the layout lives here, below both.

#include <cstdint>
#include <vector>

#include "runtime/core/Mod.h"

namespace attnc {

// Where a tile sits: one (b, h) and the call's sizes. q_first / kv_first are global indices of
// the tile's first row / column.
struct TilePosition {
  int32_t b = 0, h = 0;
  int32_t q_len = 0, kv_len = 0, num_heads = 0, num_kv_heads = 0;
};

// One parameter as compiled code reads it. Tensors are CPU strided views (strides in elements);
// the storage type is fixed by the signature, so the program knows it statically.
struct CpuParam {
  int32_t int_value = 0;
  float float_value = 0;
  int32_t bool_value = 0;
  const void* data = nullptr;
  int32_t rank = 0;
  int64_t shape[8] = {};
  int64_t strides[8] = {};
};

// Where compiled code reports the first out-of-range index when bounds checking is on.
struct CpuBoundsReport {
  int32_t failed = 0;
  int32_t param = 0, dim = 0;
  int64_t index = 0, extent = 0;
  int32_t b = 0, h = 0, q_idx = 0, kv_idx = 0;
};

// The arguments of one call, packed once per call from a bound Mod.
struct CpuModArgs {
  std::vector<CpuParam> params;  // indexed like ModDef::params
  bool check_bounds = false;
  static CpuModArgs pack(const Mod& mod, bool check_bounds);  // RuntimeError when unbound / not CPU
};

}  // namespace attnc
