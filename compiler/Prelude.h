#pragma once
// The built-in mods (causal, sliding windows, ALiBi, prefix LM, document masking, additive bias,
// softcapping), written in the mod language itself so they go through the same parser, type
// checker, optimiser and signatures as a user's mods: a built-in is never special-cased anywhere.
// runtime/core/Mods.h wraps them in the attnax-style API (causal_mod(), alibi_mod(12), ...).

#include <string_view>

#include "compiler/Module.h"

namespace attnc::ir {

// The source text of the built-ins ("<prelude>").
std::string_view prelude_source();

// The checked module of prelude_source(), parsed on first use; thread-safe, never destroyed.
const Module& prelude_module();

}  // namespace attnc::ir
