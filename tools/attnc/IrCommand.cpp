// attnc ir FILE --mod NAME: the optimised canonical IR of one mod and its signature.

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "compiler/Pipeline.h"
#include "compiler/Printer.h"
#include "compiler/Signature.h"
#include "compiler/TileClassifier.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/Command.h"

namespace attnc::cli {

const char* const kIrHelp = R"(Usage: attnc ir FILE --mod NAME [--print-after-all] [--canonical] [--tile-classifier]

Prints the optimised IR of mod NAME from FILE (calls inlined, constants folded,
simplified, canonical operand order, shared subexpressions as tN temporaries),
then a line `signature: <32 hex digits>`. Mods with the same signature share
compiled kernels: formatting, comments, parameter and let names, operand order
of commutative operators and mirrored comparisons do not change it.

Options:
  --mod NAME          the definition to print (required)
  --print-after-all   print the IR after each pass of the pipeline
  --canonical         print in the canonical style the signature hashes
                      (no user names: parameters are $0, $1, ...)
  --tile-classifier   for a mask mod, also print its tile classifier: the IR
                      that decides EMPTY (0) / FULL (1) / PARTIAL (2) for a tile
                      q_tile_first..q_tile_last x kv_tile_first..kv_tile_last

The signature assumes the default storage of tensor parameters (fp32 for
float, int32 for int, bool for bool); binding other storage types changes it.
)";

int run_ir(Args args) {
  std::string file, mod;
  bool print_after_all = false, tile_classifier = false;
  ir::PrintStyle style = ir::PrintStyle::Readable;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--mod") {
      mod = option_value(args, i);
    } else if (arg == "--print-after-all") {
      print_after_all = true;
    } else if (arg == "--canonical") {
      style = ir::PrintStyle::Canonical;
    } else if (arg == "--tile-classifier") {
      tile_classifier = true;
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + arg + "'");
    } else if (file.empty()) {
      file = arg;
    } else {
      throw UsageError("more than one file given ('" + file + "' and '" + arg + "')");
    }
  }
  if (file.empty()) throw UsageError("no file given");
  if (mod.empty()) throw UsageError("--mod NAME is required");

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
