#include "dsl/Source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace attnc::dsl {

SourceFile::SourceFile(std::string name, std::string text) : name_(std::move(name)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

std::string_view SourceFile::slice(SourceRange range) const {
  uint32_t begin = std::min<uint32_t>(range.begin, text_.size());
  uint32_t end = std::clamp<uint32_t>(range.end, begin, text_.size());
  return std::string_view(text_).substr(begin, end - begin);
}

LineColumn SourceFile::line_column(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, text_.size());
  auto after = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  uint32_t line_index = static_cast<uint32_t>(after - line_starts_.begin()) - 1;
  const uint32_t begin = line_starts_[line_index];
  return {line_index + 1, display_columns(std::string_view(text_).substr(begin, offset - begin)) + 1};
}

std::string_view SourceFile::line_text(uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  uint32_t begin = line_starts_[line - 1];
  uint32_t end = line < line_starts_.size() ? line_starts_[line] - 1 : static_cast<uint32_t>(text_.size());
  std::string_view text = std::string_view(text_).substr(begin, end - begin);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

namespace {

// East Asian Wide and Fullwidth code points (after Markus Kuhn's wcwidth): the ranges terminals
// draw two columns wide.
constexpr std::pair<uint32_t, uint32_t> kWideRanges[] = {
    {0x1100, 0x115F},   {0x2329, 0x232A},   {0x2E80, 0x303E},   {0x3040, 0xA4CF},   {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},
    {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

bool is_wide(uint32_t code) {
  for (const auto& [first, last] : kWideRanges) {
    if (code >= first && code <= last) return true;
  }
  return false;
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

CodePoint code_point_at(std::string_view text, size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return {1, 1};
  // The length and the smallest value of each sequence length; anything else is an invalid byte.
  uint32_t length = 0, code = 0, smallest = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code = lead & 0x07, smallest = 0x10000;
  } else {
    return {1, 1};
  }
  if (at + length > text.size()) return {1, 1};
  for (uint32_t i = 1; i < length; ++i) {
    const auto byte = static_cast<unsigned char>(text[at + i]);
    if (!is_continuation(byte)) return {1, 1};
    code = (code << 6) | (byte & 0x3F);
  }
  // Overlong encodings, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
  if (code < smallest || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return {1, 1};
  return {length, is_wide(code) ? 2u : 1u};
}

uint32_t display_columns(std::string_view text) {
  uint32_t columns = 0;
  for (size_t at = 0; at < text.size();) {
    CodePoint c = code_point_at(text, at);
    columns += c.columns;
    at += c.bytes;
  }
  return columns;
}

std::shared_ptr<const SourceFile> read_source_file(const std::string& path) {
  // A directory opens as a stream that reads nothing: it would pass as an empty mod file.
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw std::runtime_error("'" + path + "' is a directory, not a mod file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read '" + path + "'");
  return std::make_shared<const SourceFile>(path, contents.str());
}

}  // namespace attnc::dsl
