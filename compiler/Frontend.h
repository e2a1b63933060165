#pragma once
// The front end in one call: parse and type-check a mod file, or throw one CompileError with
// every diagnostic of the file.

#include <memory>
#include <string>

#include "compiler/Module.h"
#include "dsl/Source.h"

namespace attnc::ir {

Module load_module(std::shared_ptr<const dsl::SourceFile> source);
Module load_module_text(std::string file_name, std::string text);
Module load_module_file(const std::string& path);  // std::runtime_error when unreadable

}  // namespace attnc::ir
