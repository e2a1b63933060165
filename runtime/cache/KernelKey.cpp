#include "runtime/cache/KernelKey.h"

#include <charconv>

#include <fmt/format.h>

#include "compiler/StableHash.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

namespace {

// Bumped whenever the layout of the text changes, so old entries never match. /2: keys name their
// family and carry the family's own fields.
constexpr std::string_view kFormatLine = "attnc-kernel-key/2";

bool is_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool has_control(std::string_view value) {
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool is_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "13.0" -> {13, 0}; nullopt for anything else.
std::optional<std::vector<long>> version_parts(std::string_view text) {
  std::vector<long> parts;
  while (true) {
    long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end == text.data()) return std::nullopt;
    parts.push_back(value);
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    if (text.empty()) return parts;
    if (text[0] != '.') return std::nullopt;
    text.remove_prefix(1);
  }
}

}  // namespace

KernelKey& KernelKey::add(std::string name, std::string value) {
  fields.emplace_back(std::move(name), std::move(value));
  return *this;
}

const std::string* KernelKey::find(std::string_view name) const {
  for (const auto& [field, value] : fields) {
    if (field == name) return &value;
  }
  return nullptr;
}

KernelKey KernelKey::with(std::string_view name, std::string_view value) const {
  KernelKey copy = *this;
  bool found = false;
  for (auto& [field, old] : copy.fields) {
    if (field == name) old = value, found = true;
  }
  if (!found) throw RuntimeError(fmt::format("kernel key of family '{}' has no field '{}'", family, name));
  return copy;
}

std::string KernelKey::serialize() const {
  if (!is_name(family)) throw RuntimeError(fmt::format("kernel key: bad family name '{}'", family));
  std::string out;
  out.reserve(512);
  out += kFormatLine;
  out += "\nfamily=";
  out += family;
  out += '\n';
  for (const auto& [name, value] : fields) {
    if (!is_name(name)) throw RuntimeError(fmt::format("kernel key: bad field name '{}'", name));
    if (has_control(value)) throw RuntimeError(fmt::format("kernel key: field '{}' holds a control character", name));
    out += name;
    out += '=';
    out += value;
    out += '\n';
  }
  return out;
}

std::optional<KernelKey> KernelKey::parse(std::string_view text) {
  // Lines; the text must end with a newline, as serialize() writes it.
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  if (lines.size() < 2 || lines[0] != kFormatLine || !lines[1].starts_with("family=")) return std::nullopt;
  KernelKey key;
  key.family = lines[1].substr(7);
  if (!is_name(key.family)) return std::nullopt;
  for (size_t i = 2; i < lines.size(); ++i) {
    size_t eq = lines[i].find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = lines[i].substr(0, eq), value = lines[i].substr(eq + 1);
    if (!is_name(name) || has_control(value)) return std::nullopt;
    key.add(std::string(name), std::string(value));
  }
  return key;
}

std::string KernelKey::hash_hex() const {
  std::string text = serialize();
  return StableHash128().bytes(text.data(), text.size()).hex();
}

std::string KernelKey::summary() const {
  std::string out = family;
  for (const auto& [name, value] : fields) {
    const bool long_hex = value.size() == 32 && is_hex(value);
    out += fmt::format(" {}={}", name, long_hex ? value.substr(0, 8) : value);
  }
  return out;
}

std::string hash_template_sources(const std::vector<std::pair<std::string_view, std::string_view>>& sources) {
  StableHash128 hash;
  hash.u64(sources.size());
  for (const auto& [name, text] : sources) hash.text(name).text(text);
  return hash.hex();
}

bool version_less(std::string_view a, std::string_view b) {
  std::optional<std::vector<long>> va = version_parts(a), vb = version_parts(b);
  if (!va || !vb) return !va && vb;  // non-versions first
  return *va < *vb;
}

}  // namespace attnc
