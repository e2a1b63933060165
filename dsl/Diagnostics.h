#pragma once
// Diagnostics for mistakes in mod text. Passes collect them in a DiagnosticEngine; when a stage
// ends with errors it throws one CompileError holding all of them, rendered the way compilers do:
//
//   mods.attn:3:41: error: unknown name 'kv'; did you mean 'kv_idx'?
//   mask_mod sliding_window(window: int) = q_idx >= kv && q_idx - kv < window;
//                                                   ^~

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/Source.h"

namespace attnc::dsl {

enum class Severity { Error, Note };

// The widest source excerpt a diagnostic shows. A longer line is cut to a window of about this
// many columns around the caret (up to kContextColumns before it), each cut marked with "...", so a
// megabyte-long line cannot make every diagnostic on it a megabyte long.
constexpr uint32_t kMaxShownColumns = 240;
constexpr uint32_t kContextColumns = 80;

// A self-contained diagnostic: it keeps the file name and line text, so it outlives the source.
struct Diagnostic {
  Severity severity = Severity::Error;
  std::string message;
  std::string file;
  uint32_t line = 1;
  uint32_t column = 1;      // in display columns (dsl/Source.h: a code point is 1, a wide one 2)
  uint32_t length = 1;      // caret width in display columns on that line (at least 1)
  std::string line_text;    // the source line, or a window of it around the caret (see kMaxShownColumns)
  uint32_t caret_byte = 0;  // where the caret starts in line_text, in bytes
};

// "file:line:col: error: message", the line, and a caret under the range.
std::string render(const Diagnostic& diagnostic);
std::string render(const std::vector<Diagnostic>& diagnostics);

class DiagnosticEngine {
 public:
  explicit DiagnosticEngine(std::shared_ptr<const SourceFile> file) : file_(std::move(file)) {}

  void error(SourceRange range, std::string message);
  void note(SourceRange range, std::string message);

  bool has_errors() const { return error_count_ > 0; }
  size_t error_count() const { return error_count_; }
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }
  const std::shared_ptr<const SourceFile>& file() const { return file_; }

  // Throws CompileError with every diagnostic so far when any of them is an error.
  void throw_if_errors() const;

 private:
  void add(Severity severity, SourceRange range, std::string message);
  void show_line(Diagnostic& d, std::string_view line, SourceRange range) const;

  std::shared_ptr<const SourceFile> file_;
  std::vector<Diagnostic> diagnostics_;
  size_t error_count_ = 0;
};

// Mistakes in the user's mod text: every diagnostic of the failed stage, rendered by what().
class CompileError : public std::runtime_error {
 public:
  explicit CompileError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace attnc::dsl
