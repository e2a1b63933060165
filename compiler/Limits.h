#pragma once
// The compiler's size limits, in one place. Each is documented for users in docs/language.md
// ("Limits"); change both together. Limits on the text itself (the expression nesting depth) live
// with the parser, in dsl/Ast.h.

#include <cstddef>

namespace attnc::ir {

// Distinct IR nodes (distinct subexpressions) inlining may build for one definition. Calls can make
// a definition exponentially larger than its text (each of n definitions calling the previous one
// twice with different arguments doubles it), so inline_calls stops with a CompileError here rather
// than running out of time or memory. 100000 nodes is far beyond any real mod (the built-in ones
// have at most a few dozen) and still compiles in about a second.
inline constexpr size_t kMaxInlinedNodes = 100'000;

// Dimensions of a tensor parameter. The backends pass a tensor's shape and strides in fixed arrays
// of this many entries (runtime/core/CpuModAbi.h, runtime/kernels/mod_abi.cuh); the type checker
// refuses more.
inline constexpr size_t kMaxTensorRank = 8;

}  // namespace attnc::ir
