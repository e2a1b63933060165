// libFuzzer target for the front end: any bytes go through the parser, the type checker and on to
// the optimiser (inlining included), the printer, the signature, the tile classifier and the CUDA
// code generator, whose contract is to report bad input as diagnostics and never to crash, hang,
// assert (InternalError) or throw anything else. Properties the front end promises are checked here
// too (error caps, tree depth, bounded excerpts, the size limit's diagnostic), so a broken promise
// is a crash that libFuzzer saves.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "compiler/CudaCodegen.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"
#include "compiler/TypeCheck.h"
#include "dsl/Diagnostics.h"
#include "dsl/Lexer.h"
#include "dsl/Parser.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnc::dsl;
  auto source = std::make_shared<const SourceFile>("fuzz.attn", std::string(reinterpret_cast<const char*>(data), size));
  DiagnosticEngine diagnostics(source);
  AstFile file = parse_file(source, diagnostics);

  // The error cap holds, and no tree is deeper than later recursive walks may assume.
  require(diagnostics.error_count() <= kMaxSyntaxErrors);
  for (const AstDefinition& definition : file.definitions) {
    require(definition.body != nullptr && definition.body->depth <= kMaxExpressionDepth);
    for (const AstLet& let : definition.lets) require(let.value != nullptr && let.value->depth <= kMaxExpressionDepth);
  }
  // Every diagnostic renders: its line and caret come from valid offsets, and however long the
  // line, the excerpt stays within the window (4 bytes per column at most, plus the markers).
  std::string rendered = render(diagnostics.diagnostics());
  require(diagnostics.diagnostics().empty() || !rendered.empty());
  for (const Diagnostic& d : diagnostics.diagnostics()) {
    require(d.line_text.size() <= 4 * kMaxShownColumns + 6 && d.caret_byte <= d.line_text.size());
  }

  attnc::ir::Module module = attnc::ir::check_module(file, diagnostics);
  (void)render(diagnostics.diagnostics());

  // Whatever checks cleanly must also get through the optimiser, the signature and (for masks)
  // the tile classifier without an InternalError: those stages meet user text right after the
  // checker, so they are part of the front end's promise.
  // The one diagnostic they may give is the documented size limit of inlining.
  module.source = source;
  for (const attnc::ir::ModDef& def : module.defs) {
    attnc::ir::ModDef optimized;
    try {
      optimized = attnc::ir::optimize(module, def);
    } catch (const CompileError& error) {
      require(error.diagnostics().size() == 1 &&
              error.diagnostics()[0].message.find("is too large to compile") != std::string::npos);
      continue;
    }
    (void)attnc::ir::print_def(optimized);
    (void)attnc::ir::compute_signature(optimized);
    const bool is_mask = optimized.kind == ModKind::Mask;
    if (is_mask) (void)attnc::ir::build_tile_classifier(optimized);
    (void)attnc::ir::generate_cuda_mods(is_mask ? nullptr : &optimized, {}, is_mask ? &optimized : nullptr, {});
  }
  return 0;
}
