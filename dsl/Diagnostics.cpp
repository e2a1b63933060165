#include "dsl/Diagnostics.h"

#include <algorithm>

#include <fmt/format.h>

namespace attnc::dsl {

std::string render(const Diagnostic& d) {
  const char* kind = d.severity == Severity::Error ? "error" : "note";
  std::string out = fmt::format("{}:{}:{}: {}: {}\n", d.file, d.line, d.column, kind, d.message);
  if (d.line_text.empty() && d.column <= 1) return out;
  // One pad character per column before the caret; tabs in the line stay tabs under it so the caret
  // lines up in any terminal.
  std::string pad;
  const size_t caret_byte = std::min<size_t>(d.caret_byte, d.line_text.size());
  for (size_t at = 0; at < caret_byte;) {
    CodePoint c = code_point_at(d.line_text, at);
    if (d.line_text[at] == '\t') {
      pad += '\t';
    } else {
      pad.append(c.columns, ' ');
    }
    at += c.bytes;
  }
  out += d.line_text + "\n" + pad + "^" + std::string(d.length > 1 ? d.length - 1 : 0, '~') + "\n";
  return out;
}

std::string render(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) out += render(d);
  return out;
}

namespace {

// A position in a line, on a code point boundary, with the display column it starts at.
struct Cursor {
  std::string_view line;
  size_t byte = 0;
  uint32_t column = 0;  // 0-based display column of `byte`

  bool at_end() const { return byte >= line.size(); }
  // Moves past one code point.
  void step() {
    CodePoint c = code_point_at(line, byte);
    byte += c.bytes;
    column += c.columns;
  }
  // Moves to the first code point that starts at or after `target` columns.
  void advance_to(uint32_t target) {
    while (!at_end() && column < target) step();
  }
  // Moves past every code point that ends at or before `target` columns.
  void advance_within(uint32_t target) {
    while (!at_end() && column + code_point_at(line, byte).columns <= target) step();
  }
};

}  // namespace

// Fills in the excerpt of `line` a diagnostic at `range` shows, the caret's position in it and its
// width. d.column (1-based display column of range.begin) is set already.
void DiagnosticEngine::show_line(Diagnostic& d, std::string_view line, SourceRange range) const {
  const uint32_t caret = d.column - 1;  // 0-based display column
  const uint32_t width = display_columns(line);
  // The caret covers the range, cut at the end of the line it starts on (and at least 1 column).
  const size_t begin = std::min<size_t>(range.begin, file_->text().size());
  const size_t begin_in_line = std::min(static_cast<size_t>(file_->text().data() + begin - line.data()), line.size());
  const size_t end_in_line = std::min<size_t>(begin_in_line + range.size(), line.size());
  const uint32_t range_columns = display_columns(line.substr(begin_in_line, end_in_line - begin_in_line));
  d.length = std::clamp<uint32_t>(range_columns, 1, std::max<uint32_t>(width > caret ? width - caret : 1, 1));
  if (width <= kMaxShownColumns) {
    d.line_text = std::string(line);
    d.caret_byte = static_cast<uint32_t>(begin_in_line);
    return;
  }
  // A window of at most kMaxShownColumns columns, markers included, starting up to kContextColumns
  // before the caret, on code point boundaries.
  const std::string_view marker = "...";
  const uint32_t marker_columns = static_cast<uint32_t>(marker.size());
  Cursor start{line};
  const uint32_t wanted_start = caret > kContextColumns ? caret - kContextColumns : 0;
  start.advance_to(wanted_start);
  const bool cut_before = start.byte > 0;
  const uint32_t room = kMaxShownColumns - (cut_before ? marker_columns : 0);
  Cursor end = start;
  end.advance_within(start.column + room);
  bool cut_after = !end.at_end();
  if (cut_after) {
    // Make room for the trailing marker.
    end = start;
    end.advance_within(start.column + room - marker_columns);
  }
  d.line_text.clear();
  if (cut_before) d.line_text += marker;
  d.line_text += line.substr(start.byte, end.byte - start.byte);
  if (cut_after) d.line_text += marker;
  const size_t caret_in_window = std::min(begin_in_line, end.byte) - start.byte;
  d.caret_byte = static_cast<uint32_t>((cut_before ? marker.size() : 0) + caret_in_window);
  // The caret stops where the window does.
  const uint32_t shown_after_caret = end.column > caret ? end.column - caret : 1;
  d.length = std::clamp<uint32_t>(d.length, 1, shown_after_caret);
}

void DiagnosticEngine::error(SourceRange range, std::string message) {
  add(Severity::Error, range, std::move(message));
}

void DiagnosticEngine::note(SourceRange range, std::string message) { add(Severity::Note, range, std::move(message)); }

void DiagnosticEngine::add(Severity severity, SourceRange range, std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.message = std::move(message);
  d.file = file_ ? file_->name() : "<input>";
  if (file_) {
    LineColumn at = file_->line_column(range.begin);
    d.line = at.line;
    d.column = at.column;
    show_line(d, file_->line_text(at.line), range);
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
