#pragma once
// Assembling CUDA translation units from the embedded kernel templates (runtime/kernels/*.cuh and
// runtime/families/*/*.cuh, runtime/cuda/EmbeddedKernels.h) and generated code. A family names the
// templates its main file includes; embedded_headers() follows their `#include "X"` lines to every
// embedded template they need, so the family's program carries those headers and its cache key
// hashes exactly them: editing one family's template leaves every other family's cached kernels
// valid. `attnc compile --emit cuda` writes a program flattened into one file.

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cuda/Nvrtc.h"

namespace attnc::cuda {

// The name the generated mod code (compiler/CudaCodegen.h) is included under.
inline constexpr const char* kGeneratedModsHeader = "attnc_mods.cuh";

// The embedded templates `roots` and everything they include among the embedded templates, each
// once, in the order of first inclusion (depth first, roots in the order given). Includes of names
// that are not embedded (the generated header, host-only headers) are left to the compiler.
// RuntimeError when a root is not embedded.
std::vector<SourceHeader> embedded_headers(std::initializer_list<std::string_view> roots);

// The stable hash (hex) of the headers' names and texts, in order: a key's template field.
std::string template_hash(const std::vector<SourceHeader>& headers);

// The program as one self-contained file: each `#include "X"` of one of its headers replaced by the
// header's text (once; `#pragma once` lines dropped), for reading or for nvcc.
std::string flatten_program(const KernelProgram& program);

}  // namespace attnc::cuda
