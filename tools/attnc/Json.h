#pragma once
// A small JSON reader for attnc's input files (the `attnc warmup` manifest): RFC 8259 values with
// each value's line and column kept, so a message can point at the offending place. Written here
// rather than taken from a library because the manifest needs little of JSON, and the GPU machines
// the project is built on have no package registry to fetch one from.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::cli {

// A syntax error, or a value of the wrong shape; what() is "LINE:COLUMN: message".
class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<std::string> keys;  // an object's keys, in order (items[i] is keys[i]'s value)
  std::vector<JsonValue> items;   // an array's elements, or an object's values
  int line = 1, column = 1;       // where the value starts

  // The value of member `key` of an object, or nullptr.
  const JsonValue* find(std::string_view key) const;
  // "LINE:COLUMN: message", for errors about this value.
  std::string where(std::string_view message) const;
  // Type checks that throw JsonError naming `what` and the value's position.
  const std::string& as_string(std::string_view what) const;
  int64_t as_integer(std::string_view what) const;
  bool as_bool(std::string_view what) const;
  const std::vector<JsonValue>& as_array(std::string_view what) const;
  const JsonValue& as_object(std::string_view what) const;
};

const char* json_kind_name(JsonValue::Kind kind);  // "null", "a boolean", "a number", ...

// Parses one JSON document (surrounding whitespace allowed). JsonError on any syntax error,
// duplicate object keys, or nesting deeper than 64 levels.
JsonValue parse_json(std::string_view text);

}  // namespace attnc::cli
