#include "runtime/cuda/KernelSource.h"

#include <set>
#include <string_view>

#include <fmt/format.h>

#include "runtime/RuntimeError.h"
#include "runtime/cuda/EmbeddedKernels.h"

namespace attnc::cuda {

namespace {

bool has_embedded(std::string_view name) {
  for (const EmbeddedKernelSource& source : embedded_kernel_sources()) {
    if (source.name == name) return true;
  }
  return false;
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

// The embedded templates, and the generated mods, as the program's headers.
KernelTranslationUnit program_with_headers(const ir::CudaModSource& mods) {
  KernelTranslationUnit unit;
  for (const EmbeddedKernelSource& source : embedded_kernel_sources()) {
    unit.program.headers.push_back({std::string(source.name), std::string(source.text), false});
  }
  unit.program.headers.push_back({kGeneratedModsHeader, mods.text, true});
  unit.program.name = "attnc_kernel.cu";
  return unit;
}

int sm_number(const std::string& arch) { return std::stoi(arch.substr(3, 2)); }

}  // namespace

KernelTranslationUnit make_kernel_translation_unit(const ir::CudaModSource& mods, const KernelSpec& spec) {
  if (spec.dtype != DType::F16 && spec.dtype != DType::BF16) {
    throw RuntimeError(fmt::format("kernels take fp16 or bf16 inputs, not {}", dtype_name(spec.dtype)));
  }
  const int head_dim_v = spec.head_dim_v == 0 ? spec.head_dim : spec.head_dim_v;
  check_cuda_arch(spec.arch);
  if (!has_embedded("flash_attention.cuh")) throw RuntimeError("this build has no flash-attention template");
  KernelTranslationUnit unit = program_with_headers(mods);
  unit.flash_attention = true;
  unit.entry = "attnc_flash_forward";
  unit.tile = choose_tile_config(spec.head_dim, head_dim_v, sm_number(spec.arch));  // checks the head dims

  // The order flash_attention.cuh's header comment asks for: the template, the generated code, the
  // traits adapting it, then the instantiation.
  std::string& main = unit.program.source;
  main += fmt::format("// attnc kernel: {} head_dim={} head_dim_v={} {} {}{}\n", dtype_name(spec.dtype), spec.head_dim,
                      head_dim_v, spec.arch, to_string(unit.tile), mods.check_bounds ? " check_bounds" : "");
  main += "#include \"flash_attention.cuh\"\n";
  main += fmt::format("#include \"{}\"\n", kGeneratedModsHeader);
  main += "#include \"generated_mods.cuh\"\n\n";
  main += fmt::format(
      "ATTNC_INSTANTIATE_FLASH_FORWARD({}, attnc_flash::GeneratedMods, attnc_dev::{}, {}, {}, {}, {}, {})\n",
      unit.entry, spec.dtype == DType::F16 ? "f16_t" : "bf16_t", spec.head_dim, head_dim_v, unit.tile.block_m,
      unit.tile.block_n, unit.tile.num_warps);
  return unit;
}

KernelTranslationUnit make_probe_translation_unit(const ir::CudaModSource& mods, const std::string& arch) {
  check_cuda_arch(arch);
  KernelTranslationUnit unit = program_with_headers(mods);
  unit.entry = "attnc_mod_probe";
  unit.program.source = fmt::format("// attnc mod probe: {}{}\n#include \"{}\"\n#include \"mod_probe.cuh\"\n", arch,
                                    mods.check_bounds ? " check_bounds" : "", kGeneratedModsHeader);
  return unit;
}

std::string flatten_program(const KernelProgram& program) {
  std::string out;
  std::set<std::string> included;
  flatten_into(program.source, program, included, out, 0);
  return out;
}

}  // namespace attnc::cuda
