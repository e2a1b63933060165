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

}  // namespace attnc::ir
