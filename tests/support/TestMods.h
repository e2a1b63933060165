#pragma once
// Mods by name for the code-generation tests: the prelude's built-ins and a few compositions that
// exercise every parameter kind (float and bool tensors, int scalars, rank-2 int tensors).

#include "compiler/Module.h"
#include "runtime/core/ModSpec.h"

namespace attnc::test {

// softcap_alibi, document_causal, window_or_sink and everything (a score mod reading every kind of
// parameter).
const ir::Module& composition_mods();

// The optimised mod `name` of the prelude or of composition_mods() with default storage; an empty
// spec for "". Fails the test for an unknown name.
ModSpec mod_spec_named(const char* name);

}  // namespace attnc::test
