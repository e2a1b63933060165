#include "runtime/cuda/KernelSource.h"

#include <algorithm>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "runtime/cache/KernelKey.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/EmbeddedKernels.h"

namespace attnc::cuda {

namespace {

const EmbeddedKernelSource* find_embedded(std::string_view name) {
  for (const EmbeddedKernelSource& source : embedded_kernel_sources()) {
    if (source.name == name) return &source;
  }
  return nullptr;
}

// The include target of a line `#include "X"` (spaces allowed around '#'), or empty.
std::string_view quoted_include(std::string_view line) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string_view::npos || line[i] != '#') return {};
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string_view::npos || line.substr(i, 7) != "include") return {};
  size_t open = line.find('"', i + 7);
  if (open == std::string_view::npos) return {};
  size_t close = line.find('"', open + 1);
  if (close == std::string_view::npos) return {};
  return line.substr(open + 1, close - open - 1);
}

bool is_pragma_once(std::string_view line) {
  size_t i = line.find_first_not_of(" \t");
  return i != std::string_view::npos && line.substr(i).starts_with("#pragma once");
}

void flatten_into(std::string_view text, const KernelProgram& program, std::set<std::string>& included,
                  std::string& out, int depth) {
  if (depth > 32) throw RuntimeError("kernel headers include each other more than 32 levels deep");
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string_view line = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    start = end == std::string_view::npos ? text.size() : end + 1;
    if (is_pragma_once(line)) continue;
    std::string_view target = quoted_include(line);
    const SourceHeader* header = nullptr;
    for (const SourceHeader& h : program.headers) {
      if (!target.empty() && h.name == target) header = &h;
    }
    if (header == nullptr) {
      out.append(line);
      out += '\n';
      continue;
    }
    if (!included.insert(header->name).second) continue;
    out += fmt::format("// ---- begin {} ----\n", header->name);
    flatten_into(header->text, program, included, out, depth + 1);
    out += fmt::format("// ---- end {} ----\n", header->name);
  }
}

}  // namespace

std::vector<SourceHeader> embedded_headers(std::initializer_list<std::string_view> roots) {
  std::vector<SourceHeader> headers;
  std::set<std::string_view> seen;
  // Depth first, in order of first inclusion: the list (and so its hash) depends on the templates'
  // text only, not on the order in which the build found the files.
  auto visit = [&](auto&& self, std::string_view name, int depth) -> void {
    if (depth > 32) throw RuntimeError("kernel templates include each other more than 32 levels deep");
    if (!seen.insert(name).second) return;
    const EmbeddedKernelSource* source = find_embedded(name);
    if (source == nullptr) throw RuntimeError(fmt::format("this build embeds no kernel template '{}'", name));
    headers.push_back({std::string(source->name), std::string(source->text), false});
    std::string_view text = source->text;
    for (size_t start = 0; start < text.size();) {
      size_t end = std::min(text.find('\n', start), text.size());
      std::string_view target = quoted_include(text.substr(start, end - start));
      if (!target.empty() && find_embedded(target) != nullptr) self(self, target, depth + 1);
      start = end + 1;
    }
  };
  for (std::string_view root : roots) visit(visit, root, 0);
  return headers;
}

std::string template_hash(const std::vector<SourceHeader>& headers) {
  std::vector<std::pair<std::string_view, std::string_view>> sources;
  for (const SourceHeader& header : headers) sources.emplace_back(header.name, header.text);
  return hash_template_sources(sources);
}

std::string flatten_program(const KernelProgram& program) {
  std::string out;
  std::set<std::string> included;
  flatten_into(program.source, program, included, out, 0);
  return out;
}

}  // namespace attnc::cuda
