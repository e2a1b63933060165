#pragma once
// A float64 evaluator of the IR, for checking derivatives by central finite differences: Float
// operations run in double (so a difference quotient is not drowned in binary32 rounding), integer
// and boolean operations follow compiler/Semantics.h exactly. Score and one tensor element may be
// moved by a small amount, which the binary32 interpreter could not represent.
//
// It is a test oracle, not a second semantics: it agrees with the interpreter up to float rounding,
// so it is only meaningful where the expression is smooth (the derivative tests check that).

#include <cstdint>
#include <vector>

#include "compiler/IR.h"
#include "compiler/Interpreter.h"

namespace attnc::ir::test {

// What to move: score by `score_delta`; element `element` (offset in elements, as the tensor's
// strides give it) of tensor parameter `param` by `element_delta` when param >= 0.
struct Float64Shift {
  double score_delta = 0;
  int64_t param = -1;
  int64_t element = 0;
  double element_delta = 0;
};

// The Float expression `root` at `env` (builtins and parameters as the interpreter binds them),
// with `shift` applied, in double precision. Int64 and LoadRange are not supported (score mods
// never hold them).
//
// With `decisions`, it also records every discrete choice the evaluation made from float values:
// the results of floor, ceil, round, float-to-int or -bool casts and float comparisons, which operand
// min and max returned, the sign abs saw, the quotient of float %; and a NaN (which equals nothing)
// where any float value is NaN, where sqrt, rsqrt, log, log2 or pow meet an argument of exactly 0,
// pow a negative base, or a division a zero divisor.
// Where two evaluations made the same decisions, the expression is one smooth formula between them
// (no jump or kink crossed, no singularity touched), which is what a finite-difference check needs.
double evaluate_float64(const Expr& root, const Environment& env, const Float64Shift& shift = {},
                        std::vector<double>* decisions = nullptr);

}  // namespace attnc::ir::test
