#pragma once
// The identity of a compiled kernel: the family that built it and everything that changes its
// bytes, written out field by field so nothing is left implicit. The cache knows no family: a key
// is the family's name and an ordered list of `name=value` fields that the family chose (for the
// flash family: the mods' signatures, the element type, the head dims, the tile configuration, the
// architecture with its suffix, the NVRTC version, the hash of the templates it includes, the
// compile options; runtime/families/flash/FlashKey.cpp). Two keys are equal exactly when their
// canonical serialisations are equal; the cache stores that text in every entry and names files
// by its 128-bit stable hash.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace attnc {

struct KernelKey {
  std::string family;  // "flash", "probe", ...: lowercase letters, digits and '_'
  // In the family's order. Names are lowercase letters, digits and '_'; values hold no control
  // character. A name may repeat (one `option` field per compile option).
  std::vector<std::pair<std::string, std::string>> fields;

  auto operator<=>(const KernelKey&) const = default;

  // Appends a field; returns *this for chaining.
  KernelKey& add(std::string name, std::string value);
  // The value of the first field named `name`, or null.
  const std::string* find(std::string_view name) const;
  // A copy with every field named `name` given `value` (the field must exist).
  KernelKey with(std::string_view name, std::string_view value) const;

  // The canonical text: a format line, `family=NAME`, then one `name=value` line per field in
  // order. RuntimeError for an empty family, a malformed name or a value with a control character
  // (either would make the text ambiguous).
  std::string serialize() const;
  // The inverse of serialize(); nullopt for any text serialize() could not have produced.
  static std::optional<KernelKey> parse(std::string_view text);
  // 32 lowercase hex digits: the StableHash128 of serialize(). Names the entry's files.
  std::string hash_hex() const;
  // One line for people: "flash score_mod=1a2b3c4d mask_mod=none dtype=bf16 ...": 32-digit hex
  // values shortened to 8.
  std::string summary() const;
};

// Hash of the template text a kernel is built from (hex), for a key's template field: the stable
// 128-bit hash of each source's name and text, in order.
std::string hash_template_sources(const std::vector<std::pair<std::string_view, std::string_view>>& sources);

// Orders two version strings ("12.4" < "13.0" < "13.10"): numerically by dot-separated parts; text
// that is not a version sorts below every version. For picking the newest compiler's entry.
bool version_less(std::string_view a, std::string_view b);

}  // namespace attnc
