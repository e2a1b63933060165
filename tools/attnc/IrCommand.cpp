// attnc ir FILE --mod NAME: the optimised canonical IR of one mod and its signature.

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

int run_ir(Args args) {
  std::string file, mod;
  bool print_after_all = false, canonical = false, tile_classifier = false;
  CommandLine command_line("attnc ir", "attnc ir FILE --mod NAME [--print-after-all] [--canonical] [--tile-classifier]",
                           R"(Prints the optimised IR of mod NAME from FILE (calls inlined, constants folded,
simplified, canonical operand order, shared subexpressions as tN temporaries),
then a line `signature: <32 hex digits>`. Mods with the same signature share
compiled kernels: formatting, comments, parameter and let names, operand order
of commutative operators and mirrored comparisons do not change it.
)",
                           R"(The signature assumes the default storage of tensor parameters (fp32 for
float, int32 for int, bool for bool); binding other storage types changes it.

Exit status: 0 on success, 1 when FILE has errors, 2 on usage errors, 3 when
FILE cannot be read or defines no mod NAME.
)");
  CLI::App& app = command_line.app();
  app.add_option("FILE", file, "the mod file")->type_name("");
  app.add_option("--mod", mod, "the definition to print (required)")->type_name("NAME");
  app.add_flag("--print-after-all", print_after_all, "print the IR after each pass of the pipeline");
  app.add_flag("--canonical", canonical,
               "print in the canonical style the signature hashes\n(no user names: parameters are $0, $1, ...)");
  app.add_flag("--tile-classifier", tile_classifier,
               "for a mask mod, also print its tile classifier: the IR\nthat decides EMPTY (0) / FULL (1) / "
               "PARTIAL (2) for a tile\nq_tile_first..q_tile_last x kv_tile_first..kv_tile_last");
  if (!command_line.parse(args)) return kExitOk;
  if (file.empty()) throw UsageError("no file given");
  if (mod.empty()) throw UsageError("--mod NAME is required");
  const ir::PrintStyle style = canonical ? ir::PrintStyle::Canonical : ir::PrintStyle::Readable;

  ir::Module module = ir::load_module_file(file);
  const ir::ModDef* def = module.find(mod);
  if (def == nullptr) {
    std::string names;
    for (const std::string& name : module.names()) names += (names.empty() ? "" : ", ") + name;
    throw RuntimeError(
        fmt::format("'{}' defines no mod named '{}' (it defines: {})", file, mod, names.empty() ? "nothing" : names));
  }
  ir::PipelineOptions options;
  if (print_after_all) {
    fmt::print("; input\n{}\n", ir::print_def(*def, style));
    options.after_pass = [style](std::string_view pass, const ir::ModDef& after) {
      fmt::print("; after {}\n{}\n", pass, ir::print_def(after, style));
    };
  }
  ir::ModDef optimized = ir::optimize(module, *def, options);
  if (print_after_all) fmt::print("; result\n");
  fmt::print("{}", ir::print_def(optimized, style));
  if (tile_classifier && optimized.kind == ir::ModKind::Mask) {
    fmt::print("tile classifier:\n{}\n", ir::print_expr(ir::build_tile_classifier(optimized), &optimized, style));
  }
  fmt::print("signature: {}\n", ir::compute_signature(optimized).hex());
  return kExitOk;
}

}  // namespace attnc::cli
