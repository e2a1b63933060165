#include "compiler/Frontend.h"

#include "compiler/TypeCheck.h"
#include "dsl/Diagnostics.h"
#include "dsl/Parser.h"

namespace attnc::ir {

Module load_module(std::shared_ptr<const dsl::SourceFile> source) {
  dsl::DiagnosticEngine diagnostics(source);
  dsl::AstFile file = dsl::parse_file(source, diagnostics);
  if (!file.source) file.source = source;
  // The checker runs even after syntax errors, on the definitions that parsed, so that one run
  // reports every mistake of the file.
  Module module = check_module(file, diagnostics);
  diagnostics.throw_if_errors();
  return module;
}

Module load_module_text(std::string file_name, std::string text) {
  return load_module(std::make_shared<const dsl::SourceFile>(std::move(file_name), std::move(text)));
}

Module load_module_file(const std::string& path) { return load_module(dsl::read_source_file(path)); }

}  // namespace attnc::ir
