#pragma once
// Type checking: turns a parsed file into typed IR, one ModDef per definition, applying the
// contract's name, type and promotion rules. `let`s are substituted (the IR is a DAG, so a let
// used twice is one shared node); calls of earlier definitions become ModCall nodes.

#include "compiler/Module.h"
#include "dsl/Ast.h"
#include "dsl/Diagnostics.h"

namespace attnc::ir {

// Checks every definition of `file`; errors go to `diagnostics` and the definitions that had
// errors are left out of the module. Never throws for bad input.
Module check_module(const dsl::AstFile& file, dsl::DiagnosticEngine& diagnostics);

}  // namespace attnc::ir
