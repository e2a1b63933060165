#pragma once
// JSON input files (the `attnc warmup` manifest) read with nlohmann-json, remembering where each
// value and each object key starts, so that a message about a value points at its line and
// column. nlohmann's DOM keeps no positions (before 3.12), so the document is read through its
// SAX interface: the handler builds the values and notes the input's position at each one.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnc::cli {

// A syntax error, or a value of the wrong shape; what() is "LINE:COLUMN: message".
class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class JsonDocument;
struct JsonMember;

// One value of a document and where it is. Type checks throw JsonError naming `what` and the
// value's position.
class JsonNode {
 public:
  const nlohmann::ordered_json& value() const { return *value_; }
  // "LINE:COLUMN: message", for errors about this value.
  std::string where(std::string_view message) const;
  // The same pointing at the value's key, for a member of an object.
  std::string where_key(std::string_view message) const;

  const std::string& as_string(std::string_view what) const;
  int64_t as_integer(std::string_view what) const;  // integral numbers, 64 or 64.0
  bool as_bool(std::string_view what) const;
  std::vector<JsonNode> as_array(std::string_view what) const;
  // An object's members in the document's order.
  std::vector<JsonMember> as_object(std::string_view what) const;
  // Member `key` of an object, if it has one.
  std::optional<JsonNode> find(const std::string& key) const;
  bool is_null() const { return value_->is_null(); }
  bool is_array() const { return value_->is_array(); }

 private:
  friend class JsonDocument;
  JsonNode(const JsonDocument* document, const nlohmann::ordered_json* value, std::string pointer)
      : document_(document), value_(value), pointer_(std::move(pointer)) {}
  JsonNode child(const nlohmann::ordered_json& value, const std::string& token) const;

  const JsonDocument* document_;
  const nlohmann::ordered_json* value_;
  std::string pointer_;  // JSON pointer of the value ("/kernels/0/dtypes")
};

struct JsonMember {
  std::string key;
  JsonNode value;
};

class JsonDocument {
 public:
  // JsonError for a syntax error, a number beyond double's range, a duplicate key in an object,
  // or nesting deeper than 64 levels.
  static JsonDocument parse(std::string_view text);

  JsonNode root() const { return JsonNode(this, root_.get(), ""); }

 private:
  friend class JsonNode;
  std::string position_text(size_t offset) const;  // "LINE:COLUMN" of a byte offset

  std::string text_;
  std::unique_ptr<nlohmann::ordered_json> root_;
  std::map<std::string, size_t> values_, keys_;  // JSON pointer -> byte offset where it starts
};

const char* json_kind_name(const nlohmann::ordered_json& value);  // "null", "a boolean", "a number", ...

}  // namespace attnc::cli
