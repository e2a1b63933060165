// attnc check FILE...: parse and type-check; diagnostics for every file, then one exit status.

#include <cstdio>

#include <fmt/format.h>

#include "compiler/Frontend.h"
#include "dsl/Diagnostics.h"
#include "tools/attnc/CommandLine.h"

namespace attnc::cli {

int run_check(Args args) {
  std::vector<std::string> files;
  CommandLine command_line("attnc check", "attnc check FILE...",
                           R"(Parses and type-checks each mod file and reports every error it finds, as
  file:line:col: error: message
with the source line and a caret. Prints one summary line per clean file.
)",
                           R"(Exit status: 0 when every file is clean, 1 when any has errors, 2 on usage
errors, 3 when a file cannot be read (or is a directory).
)");
  command_line.app().add_option("FILE", files, "mod files to check")->type_name("");
  if (!command_line.parse(args)) return kExitOk;
  if (files.empty()) throw UsageError("no files to check");

  bool any_errors = false;
  for (const std::string& path : files) {
    try {
      ir::Module module = ir::load_module_file(path);
      fmt::print("{}: {} definition{}, no errors\n", path, module.defs.size(), module.defs.size() == 1 ? "" : "s");
    } catch (const dsl::CompileError& e) {
      std::fputs(e.what(), stderr);
      any_errors = true;
    }
  }
  return any_errors ? kExitCompileError : kExitOk;
}

}  // namespace attnc::cli
