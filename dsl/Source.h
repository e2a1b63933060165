#pragma once
// A source file held in memory, and ranges of bytes in it. Every token and syntax node carries a
// SourceRange so that a diagnostic can point at the exact text the user wrote.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::dsl {

// Half-open byte range [begin, end) into a SourceFile's text.
struct SourceRange {
  uint32_t begin = 0;
  uint32_t end = 0;

  uint32_t size() const { return end - begin; }
  // The smallest range covering both.
  static SourceRange cover(SourceRange a, SourceRange b) {
    return {a.begin < b.begin ? a.begin : b.begin, a.end > b.end ? a.end : b.end};
  }
};

// 1-based line and column; columns count display columns (see CodePoint below), not bytes.
struct LineColumn {
  uint32_t line = 1;
  uint32_t column = 1;
};

class SourceFile {
 public:
  SourceFile(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  std::string_view slice(SourceRange range) const;

  LineColumn line_column(uint32_t offset) const;
  // The text of a 1-based line without its newline.
  std::string_view line_text(uint32_t line) const;

 private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;  // offset of the first byte of each line
};

// How source text is counted in columns (the `col` of `file:line:col`, and the caret): one column
// per UTF-8 code point, two for an East Asian wide or fullwidth one (CJK ideographs, kana, Hangul,
// fullwidth forms, emoji), and one per byte that is not part of a valid UTF-8 sequence. A tab is one
// column (the caret line repeats the tab, so it lines up in any terminal).
struct CodePoint {
  uint32_t bytes = 1;    // its length in bytes (1 for an invalid byte)
  uint32_t columns = 1;  // its display width: 1, or 2 when wide
};

// The code point that starts at `text[at]` (at < text.size()).
CodePoint code_point_at(std::string_view text, size_t at);

// The display width of `text` in columns.
uint32_t display_columns(std::string_view text);

// Reads a file into a SourceFile; throws std::runtime_error naming the path when it cannot.
std::shared_ptr<const SourceFile> read_source_file(const std::string& path);

}  // namespace attnc::dsl
