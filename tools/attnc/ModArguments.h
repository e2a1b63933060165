#pragma once
// Binding a mod's parameters from the command line (`--arg NAME=VALUE`, `--arg NAME=FILE.npy`), with
// messages that say what the parameter takes. Used by `attnc explain`; `attnc run` has its own copy
// in RunCommand.cpp for now (another change owns that file).

#include <string>
#include <utility>
#include <vector>

#include "runtime/core/Mod.h"

namespace attnc::cli {

// NAME=VALUE pairs of repeated `option` values; UsageError for text without a NAME=.
std::vector<std::pair<std::string, std::string>> split_bindings(const std::vector<std::string>& texts,
                                                                const std::string& option);

// Binds NAME=VALUE in `mod` when it declares NAME (scalars from text: int, float or true/false; tensors
// from a .npy file); returns whether it did. UsageError for a value of the wrong form, RuntimeError
// for an unreadable file or a tensor the parameter cannot take.
bool bind_mod_argument(Mod& mod, const std::string& name, const std::string& value);

// RuntimeError naming the parameters of `mod` still unbound, with the --arg to add.
void require_all_bound(const Mod& mod);

}  // namespace attnc::cli
