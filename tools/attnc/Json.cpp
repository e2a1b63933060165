#include "tools/attnc/Json.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace attnc::cli {

namespace {

constexpr int kMaxDepth = 64;

// value   = object | array | string | number | "true" | "false" | "null"
// object  = "{" [ string ":" value { "," string ":" value } ] "}"
// array   = "[" [ value { "," value } ] "]"
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  JsonValue parse_document() {
    skip_space();
    JsonValue value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail(std::string_view message) const {
    throw JsonError(fmt::format("{}:{}: {}", line_, column_, message));
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }
  void advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }
  void expect(char c) {
    if (peek() != c || at_end()) fail(fmt::format("expected '{}'", c));
    advance();
  }
  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) advance();
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    JsonValue value;
    value.line = line_;
    value.column = column_;
    if (at_end()) fail("expected a value, found the end of the file");
    char c = peek();
    if (c == '{') {
      value.kind = JsonValue::Kind::Object;
      advance();
      skip_space();
      if (peek() == '}') {
        advance();
        return value;
      }
      for (;;) {
        skip_space();
        if (peek() != '"') fail("expected a string (an object key)");
        std::string key = parse_string();
        for (const std::string& existing : value.keys) {
          if (existing == key) fail(fmt::format("duplicate key \"{}\"", key));
        }
        skip_space();
        expect(':');
        skip_space();
        value.keys.push_back(std::move(key));
        value.items.push_back(parse_value(depth + 1));
        skip_space();
        if (peek() == ',') {
          advance();
          continue;
        }
        expect('}');
        return value;
      }
    }
    if (c == '[') {
      value.kind = JsonValue::Kind::Array;
      advance();
      skip_space();
      if (peek() == ']') {
        advance();
        return value;
      }
      for (;;) {
        skip_space();
        value.items.push_back(parse_value(depth + 1));
        skip_space();
        if (peek() == ',') {
          advance();
          continue;
        }
        expect(']');
        return value;
      }
    }
    if (c == '"') {
      value.kind = JsonValue::Kind::String;
      value.string = parse_string();
      return value;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      value.kind = JsonValue::Kind::Number;
      value.number = parse_number();
      return value;
    }
    for (auto [word, kind, boolean] :
         {std::tuple{"true", JsonValue::Kind::Bool, true}, std::tuple{"false", JsonValue::Kind::Bool, false},
          std::tuple{"null", JsonValue::Kind::Null, false}}) {
      if (text_.substr(pos_).starts_with(word)) {
        for (size_t i = 0; word[i] != '\0'; ++i) advance();
        value.kind = kind;
        value.boolean = boolean;
        return value;
      }
    }
    fail(fmt::format("unexpected character '{}'", c));
  }

  // number = [ "-" ] int [ frac ] [ exp ]
  double parse_number() {
    size_t start = pos_;
    if (peek() == '-') advance();
    if (peek() == '0') {
      advance();
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9' && !at_end()) advance();
    } else {
      fail("expected a digit");
    }
    if (peek() == '.') {
      advance();
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit after '.'");
      while (peek() >= '0' && peek() <= '9' && !at_end()) advance();
    }
    if (peek() == 'e' || peek() == 'E') {
      advance();
      if (peek() == '+' || peek() == '-') advance();
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit in the exponent");
      while (peek() >= '0' && peek() <= '9' && !at_end()) advance();
    }
    double value = 0;
    auto [end, error] = std::from_chars(text_.data() + start, text_.data() + pos_, value);
    if (error != std::errc() || end != text_.data() + pos_ || !std::isfinite(value)) fail("number out of range");
    return value;
  }

  unsigned parse_hex4() {
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      int digit = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
      if (digit < 0 || at_end()) fail("expected four hex digits after \\u");
      code = code * 16 + static_cast<unsigned>(digit);
      advance();
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      char c = peek();
      if (c == '"') {
        advance();
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string (escape it)");
      if (c != '\\') {
        out += c;
        advance();
        continue;
      }
      advance();
      char e = peek();
      if (at_end()) fail("unterminated string");
      advance();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned code = parse_hex4();
          if (code >= 0xD800 && code <= 0xDBFF) {  // a surrogate pair
            if (peek() != '\\') fail("unpaired surrogate in \\u escape");
            advance();
            if (peek() != 'u') fail("unpaired surrogate in \\u escape");
            advance();
            unsigned low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("unpaired surrogate in \\u escape");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            fail("unpaired surrogate in \\u escape");
          }
          append_utf8(out, code);
          break;
        }
        default: fail(fmt::format("unknown escape '\\{}'", e));
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1, column_ = 1;
};

}  // namespace

const char* json_kind_name(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return "a boolean";
    case JsonValue::Kind::Number: return "a number";
    case JsonValue::Kind::String: return "a string";
    case JsonValue::Kind::Array: return "an array";
    case JsonValue::Kind::Object: return "an object";
  }
  return "?";
}

const JsonValue* JsonValue::find(std::string_view key) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

std::string JsonValue::where(std::string_view message) const { return fmt::format("{}:{}: {}", line, column, message); }

const std::string& JsonValue::as_string(std::string_view what) const {
  if (kind != Kind::String)
    throw JsonError(where(fmt::format("{} must be a string, not {}", what, json_kind_name(kind))));
  return string;
}

int64_t JsonValue::as_integer(std::string_view what) const {
  if (kind != Kind::Number || number != std::floor(number) || std::fabs(number) > 1e15) {
    throw JsonError(where(fmt::format("{} must be an integer", what)));
  }
  return static_cast<int64_t>(number);
}

bool JsonValue::as_bool(std::string_view what) const {
  if (kind != Kind::Bool) throw JsonError(where(fmt::format("{} must be true or false", what)));
  return boolean;
}

const std::vector<JsonValue>& JsonValue::as_array(std::string_view what) const {
  if (kind != Kind::Array)
    throw JsonError(where(fmt::format("{} must be an array, not {}", what, json_kind_name(kind))));
  return items;
}

const JsonValue& JsonValue::as_object(std::string_view what) const {
  if (kind != Kind::Object) {
    throw JsonError(where(fmt::format("{} must be an object, not {}", what, json_kind_name(kind))));
  }
  return *this;
}

JsonValue parse_json(std::string_view text) { return JsonParser(text).parse_document(); }

}  // namespace attnc::cli
