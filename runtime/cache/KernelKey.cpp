#include "runtime/cache/KernelKey.h"

#include <charconv>

#include <fmt/format.h>

#include "compiler/StableHash.h"
#include "runtime/RuntimeError.h"

namespace attnc {

namespace {

// Bumped whenever a field is added, removed or changes meaning, so old entries never match.
constexpr std::string_view kFormatLine = "attnc-kernel-key/1";

void check_text(std::string_view field, std::string_view value, bool may_be_empty) {
  if (value.empty() && !may_be_empty) throw RuntimeError(fmt::format("kernel key: field '{}' is empty", field));
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw RuntimeError(fmt::format("kernel key: field '{}' holds a control character", field));
    }
  }
}

std::string signature_text(const std::optional<ir::Signature>& signature) {
  return signature ? signature->hex() : std::string("none");
}

std::optional<uint64_t> parse_hex64(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  return value;
}

// "none" or 32 lowercase hex digits. Outer optional: parse success; inner: the signature.
std::optional<std::optional<ir::Signature>> parse_signature(std::string_view text) {
  if (text == "none") return std::optional<ir::Signature>();
  if (text.size() != 32) return std::nullopt;
  auto high = parse_hex64(text.substr(0, 16));
  auto low = parse_hex64(text.substr(16));
  if (!high || !low) return std::nullopt;
  return std::optional<ir::Signature>(ir::Signature{*high, *low});
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

std::string KernelKey::serialize() const {
  check_text("arch", arch, false);
  check_text("nvrtc", nvrtc_version, false);
  check_text("template", template_hash, false);
  check_text("emit", emit, false);
  for (const std::string& option : compile_options) check_text("option", option, true);
  std::string out;
  out.reserve(512);
  out += kFormatLine;
  out += '\n';
  auto line = [&](std::string_view name, std::string_view value) {
    out += name;
    out += '=';
    out += value;
    out += '\n';
  };
  line("score_mod", signature_text(score_mod));
  line("mask_mod", signature_text(mask_mod));
  line("dtype", dtype_name(dtype));
  line("head_dim", std::to_string(head_dim));
  line("head_dim_v", std::to_string(head_dim_v));
  line("block_m", std::to_string(tile.block_m));
  line("block_n", std::to_string(tile.block_n));
  line("num_warps", std::to_string(tile.num_warps));
  line("arch", arch);
  line("nvrtc", nvrtc_version);
  line("template", template_hash);
  line("check_bounds", check_bounds ? "1" : "0");
  line("emit", emit);
  for (const std::string& option : compile_options) line("option", option);
  return out;
}

std::optional<KernelKey> KernelKey::parse(std::string_view text) {
  // Split into lines; the text must end with a newline, as serialize() writes it.
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  // The fields in serialisation order, and their positions.
  static constexpr std::string_view kFields[] = {"score_mod", "mask_mod",     "dtype",     "head_dim", "head_dim_v",
                                                 "block_m",   "block_n",      "num_warps", "arch",     "nvrtc",
                                                 "template",  "check_bounds", "emit"};
  enum Field { Score, Mask, Dtype, HeadDim, HeadDimV, BlockM, BlockN, NumWarps, Arch, Nvrtc, Template, Bounds, Emit };
  constexpr size_t kFieldCount = std::size(kFields);
  if (lines.size() < kFieldCount + 1 || lines[0] != kFormatLine) return std::nullopt;
  std::string_view values[kFieldCount];
  for (size_t i = 0; i < kFieldCount; ++i) {
    std::string_view l = lines[i + 1];
    if (!l.starts_with(kFields[i]) || l.size() <= kFields[i].size() || l[kFields[i].size()] != '=') {
      return std::nullopt;
    }
    values[i] = l.substr(kFields[i].size() + 1);
  }
  KernelKey key;
  auto score = parse_signature(values[Score]);
  auto mask = parse_signature(values[Mask]);
  auto dtype = parse_dtype(values[Dtype]);
  if (!score || !mask || !dtype || dtype_name(*dtype) != values[Dtype]) return std::nullopt;
  key.score_mod = *score;
  key.mask_mod = *mask;
  key.dtype = *dtype;
  std::pair<Field, int*> ints[] = {{HeadDim, &key.head_dim},
                                   {HeadDimV, &key.head_dim_v},
                                   {BlockM, &key.tile.block_m},
                                   {BlockN, &key.tile.block_n},
                                   {NumWarps, &key.tile.num_warps}};
  for (auto [field, target] : ints) {
    auto value = parse_int(values[field]);
    if (!value) return std::nullopt;
    *target = *value;
  }
  key.arch = values[Arch];
  key.nvrtc_version = values[Nvrtc];
  key.template_hash = values[Template];
  if (values[Bounds] != "0" && values[Bounds] != "1") return std::nullopt;
  key.check_bounds = values[Bounds] == "1";
  key.emit = values[Emit];
  for (size_t i = kFieldCount + 1; i < lines.size(); ++i) {
    if (!lines[i].starts_with("option=")) return std::nullopt;
    key.compile_options.emplace_back(lines[i].substr(7));
  }
  // Only canonical text parses: anything serialize() would write differently is rejected.
  try {
    std::string again = key.serialize();
    std::string original;
    for (std::string_view l : lines) (original += l) += '\n';
    if (again != original) return std::nullopt;
  } catch (const RuntimeError&) {
    return std::nullopt;
  }
  return key;
}

std::string KernelKey::hash_hex() const {
  std::string text = serialize();
  return StableHash128().bytes(text.data(), text.size()).hex();
}

std::string KernelKey::summary() const {
  auto short_sig = [](const std::optional<ir::Signature>& s) {
    return s ? s->hex().substr(0, 8) : std::string("none");
  };
  std::string out = fmt::format("score={} mask={} {} d{}/{} {}x{}w{} {} nvrtc{} tmpl={} {}", short_sig(score_mod),
                                short_sig(mask_mod), dtype_name(dtype), head_dim, head_dim_v, tile.block_m,
                                tile.block_n, tile.num_warps, arch, nvrtc_version, template_hash.substr(0, 8), emit);
  if (check_bounds) out += " check-bounds";
  for (const std::string& option : compile_options) out += " " + option;
  return out;
}

std::string hash_template_sources(const std::vector<std::pair<std::string_view, std::string_view>>& sources) {
  StableHash128 hash;
  hash.u64(sources.size());
  for (const auto& [name, text] : sources) hash.text(name).text(text);
  return hash.hex();
}

}  // namespace attnc
