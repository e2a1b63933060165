#pragma once
// The derivatives of a bound score mod as bound mods (compiler/Differentiate.h gives their meaning
// and the values at non-differentiable points): each is an optimised score mod over the same
// parameters, bound to the same arguments, so every backend that evaluates score mods (the
// interpreter, the LLVM JIT, the CUDA code generator) evaluates them with no new machinery, and
// their signatures key the same caches.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/Mod.h"

namespace attnc {

struct ModDerivatives {
  // One read of a float tensor parameter: d s' / d (the element read), and the element's index
  // along each dimension as float(index), already clamped into range (exact: see check below).
  struct Site {
    uint32_t param = 0;
    std::vector<Mod> indices;
    Mod derivative;
  };

  Mod d_score;  // d s' / d score
  // Whether d_score is the constant 1 (score + something that does not depend on score), which a
  // kernel may skip multiplying by.
  bool d_score_is_one = false;
  std::vector<Site> sites;
  // The float tensor parameters (indices into the mod's params), the ones that get gradients.
  std::vector<uint32_t> float_tensors;
};

// The derivatives of `score_mod` (a score mod, fully bound). RuntimeError when a float tensor
// parameter has an extent above 2^24 (its float indices would not be exact); `function` prefixes it.
ModDerivatives derive_score_mod(const char* function, const Mod& score_mod);

}  // namespace attnc
