#include "tools/attnc/LocatedJson.h"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

namespace attnc::cli {

using nlohmann::ordered_json;

namespace {

constexpr size_t kMaxDepth = 64;

// A pointer into the text that records, in `*consumed`, how far nlohmann's lexer has read: the
// SAX handler learns from it where each value ends, and from that where the next one starts.
struct CountingIterator {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  const char* at = nullptr;
  const char** consumed = nullptr;

  reference operator*() const { return *at; }
  CountingIterator& operator++() {
    *consumed = ++at;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const CountingIterator& other) const { return at == other.at; }
};

// Appends one reference token to a JSON pointer (RFC 6901: '~' -> "~0", '/' -> "~1").
std::string pointer_append(const std::string& pointer, const std::string& token) {
  std::string out = pointer + "/";
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

// nlohmann's message without its prefix, in the words attnc used before it used nlohmann.
std::string syntax_message(const std::string& what) {
  // "[json.exception.parse_error.101] parse error at line 2, column 14: syntax error while parsing
  // value - unexpected '}'; expected '[', '{', or a literal"
  size_t dash = what.find(" - ");
  std::string detail = dash != std::string::npos              ? what.substr(dash + 3)
                       : what.find("] ") != std::string::npos ? what.substr(what.find("] ") + 2)
                                                              : what;
  if (detail.find("expected end of input") != std::string::npos) return "unexpected text after the JSON value";
  if (detail.starts_with("invalid string: missing closing quote")) return "unterminated string";
  if (detail.starts_with("unexpected end of input")) return "expected a value, found the end of the file";
  if (detail.starts_with("unexpected '")) return "unexpected character " + detail.substr(11);
  return detail.substr(0, detail.find("; last read"));
}

// Builds the document from SAX events and notes where each value and key starts.
class Handler {
 public:
  Handler(std::string_view text, const char** consumed, std::map<std::string, size_t>& values,
          std::map<std::string, size_t>& keys)
      : text_(text), consumed_(consumed), values_(values), keys_(keys) {}

  ordered_json root;
  std::string error;  // "LINE:COLUMN: message" when parsing stopped
  size_t error_offset = 0;

  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(ordered_json::number_integer_t v) { return value(v); }
  bool number_unsigned(ordered_json::number_unsigned_t v) { return value(v); }
  bool number_float(ordered_json::number_float_t v, const std::string&) { return value(v); }
  bool string(std::string& v) { return value(v); }
  bool binary(ordered_json::binary_t&) { return fail(next_start(), "binary values are not JSON"); }

  bool start_object(std::size_t) { return open(ordered_json::object()); }
  bool start_array(std::size_t) { return open(ordered_json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& k) {
    size_t at = next_start();
    Frame& frame = stack_.back();
    if (frame.container->contains(k)) return fail(at, fmt::format("duplicate key \"{}\"", k));
    frame.key = k;
    keys_[pointer_append(frame.pointer, k)] = at;
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // `position` counts the characters read, the offending one included.
    return fail(position == 0 ? 0 : position - 1, syntax_message(e.what()));
  }

 private:
  struct Frame {
    ordered_json* container;
    std::string pointer;
    std::string key;  // objects: the key of the next value
  };

  // Where the next value or key starts: past what the lexer has read at the previous event (which
  // may include one character of lookahead after a number), whitespace, ',' and ':'.
  size_t next_start() {
    size_t at = static_cast<size_t>(*consumed_ - text_.data());
    size_t start = std::min(last_end_, at);
    while (start < text_.size() && (text_[start] == ' ' || text_[start] == '\t' || text_[start] == '\n' ||
                                    text_[start] == '\r' || text_[start] == ',' || text_[start] == ':')) {
      ++start;
    }
    last_end_ = at;
    return start;
  }

  // Places `v` in the current container (or as the root); returns it and its pointer.
  std::pair<ordered_json*, std::string> place(ordered_json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return {&root, ""};
    }
    Frame& frame = stack_.back();
    if (frame.container->is_array()) {
      std::string pointer = pointer_append(frame.pointer, std::to_string(frame.container->size()));
      frame.container->push_back(std::move(v));
      return {&frame.container->back(), pointer};
    }
    std::string pointer = pointer_append(frame.pointer, frame.key);
    ordered_json& slot = (*frame.container)[frame.key];
    slot = std::move(v);
    return {&slot, pointer};
  }

  bool value(ordered_json v) {
    size_t at = next_start();
    values_[place(std::move(v)).second] = at;
    return true;
  }

  bool open(ordered_json empty) {
    size_t at = next_start();
    if (stack_.size() >= kMaxDepth) return fail(at, "nested too deeply");
    auto [slot, pointer] = place(std::move(empty));
    values_[pointer] = at;
    stack_.push_back(Frame{slot, pointer, ""});
    return true;
  }

  bool close() {
    last_end_ = static_cast<size_t>(*consumed_ - text_.data());
    stack_.pop_back();
    return true;
  }

  bool fail(size_t offset, std::string message) {
    error_offset = offset;
    error = std::move(message);
    return false;
  }

  std::string_view text_;
  const char** consumed_;
  std::map<std::string, size_t>& values_;
  std::map<std::string, size_t>& keys_;
  std::vector<Frame> stack_;
  size_t last_end_ = 0;
};

}  // namespace

JsonDocument JsonDocument::parse(std::string_view text) {
  JsonDocument document;
  document.text_ = std::string(text);
  const char* begin = document.text_.data();
  const char* consumed = begin;
  Handler handler(document.text_, &consumed, document.values_, document.keys_);
  bool ok = ordered_json::sax_parse(CountingIterator{begin, &consumed},
                                    CountingIterator{begin + document.text_.size(), &consumed}, &handler);
  if (!ok || !handler.error.empty()) {
    throw JsonError(fmt::format("{}: {}", document.position_text(handler.error_offset),
                                handler.error.empty() ? "malformed JSON" : handler.error));
  }
  document.root_ = std::make_unique<ordered_json>(std::move(handler.root));
  return document;
}

std::string JsonDocument::position_text(size_t offset) const {
  offset = std::min(offset, text_.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text_[i] == '\n') ++line, line_start = i + 1;
  }
  return fmt::format("{}:{}", line, offset - line_start + 1);
}

const char* json_kind_name(const ordered_json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

std::string JsonNode::where(std::string_view message) const {
  auto found = document_->values_.find(pointer_);
  return fmt::format("{}: {}", document_->position_text(found == document_->values_.end() ? 0 : found->second),
                     message);
}

std::string JsonNode::where_key(std::string_view message) const {
  auto found = document_->keys_.find(pointer_);
  if (found == document_->keys_.end()) return where(message);
  return fmt::format("{}: {}", document_->position_text(found->second), message);
}

JsonNode JsonNode::child(const ordered_json& value, const std::string& token) const {
  return JsonNode(document_, &value, pointer_append(pointer_, token));
}

const std::string& JsonNode::as_string(std::string_view what) const {
  if (!value_->is_string()) {
    throw JsonError(where(fmt::format("{} must be a string, not {}", what, json_kind_name(*value_))));
  }
  return value_->get_ref<const std::string&>();
}

int64_t JsonNode::as_integer(std::string_view what) const {
  if (value_->is_number_integer()) return value_->get<int64_t>();
  if (value_->is_number_unsigned() && value_->get<uint64_t>() <= uint64_t{1} << 53) return value_->get<int64_t>();
  if (value_->is_number_float()) {
    double x = value_->get<double>();
    if (x == std::floor(x) && std::fabs(x) <= 1e15) return static_cast<int64_t>(x);
  }
  throw JsonError(where(fmt::format("{} must be an integer", what)));
}

bool JsonNode::as_bool(std::string_view what) const {
  if (!value_->is_boolean()) throw JsonError(where(fmt::format("{} must be true or false", what)));
  return value_->get<bool>();
}

std::vector<JsonNode> JsonNode::as_array(std::string_view what) const {
  if (!value_->is_array()) {
    throw JsonError(where(fmt::format("{} must be an array, not {}", what, json_kind_name(*value_))));
  }
  std::vector<JsonNode> items;
  for (size_t i = 0; i < value_->size(); ++i) items.push_back(child((*value_)[i], std::to_string(i)));
  return items;
}

std::vector<JsonMember> JsonNode::as_object(std::string_view what) const {
  if (!value_->is_object()) {
    throw JsonError(where(fmt::format("{} must be an object, not {}", what, json_kind_name(*value_))));
  }
  std::vector<JsonMember> members;
  for (const auto& [key, value] : value_->items()) members.push_back(JsonMember{key, child(value, key)});
  return members;
}

std::optional<JsonNode> JsonNode::find(const std::string& key) const {
  if (!value_->is_object()) return std::nullopt;
  auto found = value_->find(key);
  if (found == value_->end()) return std::nullopt;
  return child(*found, key);
}

}  // namespace attnc::cli
