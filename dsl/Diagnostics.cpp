#include "dsl/Diagnostics.h"

#include <algorithm>

#include <fmt/format.h>

namespace attnc::dsl {

std::string render(const Diagnostic& d) {
  const char* kind = d.severity == Severity::Error ? "error" : "note";
  std::string out = fmt::format("{}:{}:{}: {}: {}\n", d.file, d.line, d.column, kind, d.message);
  if (d.line_text.empty() && d.column <= 1) return out;
  // Tabs in the line stay tabs under the caret so the caret lines up in any terminal.
  std::string pad;
  for (uint32_t i = 0; i + 1 < d.column && i < d.line_text.size(); ++i) pad += d.line_text[i] == '\t' ? '\t' : ' ';
  out += d.line_text + "\n" + pad + "^" + std::string(d.length > 1 ? d.length - 1 : 0, '~') + "\n";
  return out;
}

std::string render(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) out += render(d);
  return out;
}

void DiagnosticEngine::error(SourceRange range, std::string message) {
  add(Severity::Error, range, std::move(message));
}

void DiagnosticEngine::note(SourceRange range, std::string message) {
  add(Severity::Note, range, std::move(message));
}

void DiagnosticEngine::add(Severity severity, SourceRange range, std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.message = std::move(message);
  d.file = file_ ? file_->name() : "<input>";
  if (file_) {
    LineColumn at = file_->line_column(range.begin);
    d.line = at.line;
    d.column = at.column;
    d.line_text = std::string(file_->line_text(at.line));
    // The caret covers the range, cut at the end of the line it starts on.
    uint32_t room = d.line_text.size() >= d.column ? static_cast<uint32_t>(d.line_text.size()) - d.column + 1 : 1;
    d.length = std::clamp<uint32_t>(range.size(), 1, std::max<uint32_t>(room, 1));
  }
  if (severity == Severity::Error) ++error_count_;
  diagnostics_.push_back(std::move(d));
}

void DiagnosticEngine::throw_if_errors() const {
  if (has_errors()) throw CompileError(diagnostics_);
}

CompileError::CompileError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(render(diagnostics)), diagnostics_(std::move(diagnostics)) {}

}  // namespace attnc::dsl
