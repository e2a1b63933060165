#pragma once
// The recursive-descent parser for the mod language (grammar: ../shared/spec/mod-language.md and
// docs/language.md). It reports every syntax error of a file: after an error it skips to the next
// ';' and carries on. Definitions that failed to parse are left out of the result.

#include <memory>

#include "dsl/Ast.h"
#include "dsl/Diagnostics.h"
#include "dsl/Source.h"

namespace attnc::dsl {

// Parses `source`; syntax errors go to `diagnostics` (which must refer to the same file).
// Never throws for bad input; runs in time linear in the input.
AstFile parse_file(std::shared_ptr<const SourceFile> source, DiagnosticEngine& diagnostics);

}  // namespace attnc::dsl
