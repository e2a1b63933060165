#include "tools/attnc/ModArguments.h"

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/Command.h"

namespace attnc::cli {

namespace {

// A float within float's range ("inf" and "-inf" too).
float parse_float_value(const std::string& text, const std::string& what) {
  if (text == "inf" || text == "+inf") return INFINITY;
  if (text == "-inf") return -INFINITY;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size() || (error != std::errc() && error != std::errc::result_out_of_range)) {
    throw UsageError(fmt::format("{}: '{}' is not a number", what, text));
  }
  if (error == std::errc::result_out_of_range || std::fabs(value) > FLT_MAX ||
      (value != 0 && std::fabs(value) < double(FLT_TRUE_MIN) / 2)) {
    throw UsageError(fmt::format("{}: '{}' is out of range for a float", what, text));
  }
  return static_cast<float>(value);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> split_bindings(const std::vector<std::string>& texts,
                                                                const std::string& option) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& text : texts) {
    const size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError(fmt::format("{} takes NAME=VALUE, got '{}'", option, text));
    out.emplace_back(text.substr(0, eq), text.substr(eq + 1));
  }
  return out;
}

bool bind_mod_argument(Mod& mod, const std::string& name, const std::string& value) {
  std::optional<uint32_t> index = mod.def().find_param(name);
  if (!index) return false;
  const ir::ParamDecl& param = mod.def().params[*index];
  if (param.is_tensor()) {
    if (!value.ends_with(".npy")) {
      throw UsageError(fmt::format("parameter '{}' is a tensor; pass it as --arg {}=FILE.npy", name, name));
    }
    mod.bind(name, read_npy(value));
    return true;
  }
  const std::string what = "--arg " + name;
  switch (param.elem) {
    case ir::Type::Int: {
      int64_t parsed = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (end != value.data() + value.size() || error != std::errc() || parsed < INT32_MIN || parsed > INT32_MAX) {
        throw UsageError(fmt::format("{}: '{}' is not a 32-bit integer (the parameter is an int)", what, value));
      }
      mod.bind(name, parsed);
      break;
    }
    case ir::Type::Float: mod.bind(name, parse_float_value(value, what)); break;
    case ir::Type::Bool:
      if (value != "true" && value != "false") throw UsageError(what + ": a bool is 'true' or 'false'");
      mod.bind(name, value == "true");
      break;
    default: break;
  }
  return true;
}

void require_all_bound(const Mod& mod) {
  std::vector<std::string> unbound = mod.unbound_params();
  if (unbound.empty()) return;
  std::string how;
  for (const std::string& name : unbound) how += fmt::format(" --arg {}=...", name);
  throw RuntimeError(fmt::format("{}: parameter{} {} not bound; pass{}", mod.describe(), unbound.size() > 1 ? "s" : "",
                                 fmt::join(unbound, ", "), how));
}

}  // namespace attnc::cli
