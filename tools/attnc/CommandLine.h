#pragma once
// One attnc command's command line, parsed with CLI11 (header-only; Debian's libcli11-dev). Each
// command declares its options on app() (bound to its variables), then calls parse() before it
// does anything else. parse() turns every CLI11 error into a UsageError in attnc's words (an
// unknown option, an unexpected argument, an option without its value, a single-value option
// given twice, a missing required option), so every command rejects a wrong command line the same
// way, with exit status 2, and before any work. --help prints the usage synopsis, the description,
// the options CLI11 knows (so the list cannot drift from the code) and the notes.
//
// Values are bound as text and converted by the command right after parse(), with messages that
// say what the option takes (CLI11's own conversions speak of types, not of attention).

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/attnc/Command.h"

namespace attnc::cli {

class CommandLine {
 public:
  // `name`: "attnc run"; `usage`: the synopsis after "Usage: " (may span lines); `description`:
  // the paragraphs before the options; `notes`: those after (exit status, formats).
  CommandLine(std::string name, std::string usage, std::string description, std::string notes);

  CLI::App& app() { return app_; }

  // An action of this command with its own options and help ("attnc cache prune").
  CLI::App* add_action(const std::string& name, const std::string& summary, std::string usage, std::string description,
                       std::string notes);

  // Parses `args`. False when --help was given: the help of the command (or of the action given)
  // has been printed on standard output. UsageError for any mistake.
  bool parse(Args args);

  // Whether option `name` ("--scale") was given.
  bool given(const std::string& name) const;

 private:
  CLI::App app_;
};

// The value options take after `option` ("--seq 1024,4096"): comma-separated, none empty.
std::vector<std::string> split_list(const std::string& text, const std::string& option);

// `text` as an int from `min` to `max`, or nullopt for anything else (the caller says what the
// option takes).
std::optional<int> parse_int(std::string_view text, int min, int max);

}  // namespace attnc::cli
