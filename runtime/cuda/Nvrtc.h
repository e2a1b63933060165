#pragma once
// NVRTC, opened at run time: CUDA C++ source (a main file plus named in-memory headers) -> PTX and
// cubin for one GPU architecture. The library is found with dlopen ("libnvrtc.so.13", then
// "libnvrtc.so", then the CUDA toolkit's lib64 directory), so nothing links against it and a
// process that never compiles a kernel never needs it. Compilation is the first stage of the
// runtime pipeline (source -> CompiledKernel -> loaded module -> launch); it needs no GPU.
//
// Every failure is a RuntimeError: NvrtcUnavailable when the library cannot be opened, NvrtcError
// (with the NVRTC log, the options and the generated source) when a program does not compile.

#include <string>
#include <utility>
#include <vector>

#include "runtime/core/RuntimeError.h"

namespace attnc::cuda {

// A header the program may #include "name", given as text (the embedded kernel templates and the
// generated mods), so no include directory is needed.
struct SourceHeader {
  std::string name;
  std::string text;
  bool generated = false;  // generated code: shown in error messages (the templates are not)
};

struct KernelProgram {
  std::string name = "attnc_kernel.cu";  // the main file's name in diagnostics
  std::string source;                    // the main translation unit
  std::vector<SourceHeader> headers;
  // C++ names whose mangled (lowered) names are wanted, e.g. "&attnc_flash_forward<64>"; extern "C"
  // entry points need none.
  std::vector<std::string> name_expressions;
};

struct NvrtcOptions {
  std::string arch = "sm_80";      // one of kCudaArchitectures (runtime/cuda/Architectures.h)
  bool line_info = false;          // -lineinfo, for profilers
  std::vector<std::string> extra;  // appended as given
};

// The result of compiling a program: PTX and cubin for the architecture, and what produced them.
struct CompiledKernel {
  std::string ptx;
  std::vector<char> cubin;
  std::string log;  // NVRTC's warnings (empty when clean)
  std::vector<std::string> options;
  std::string source;  // the main translation unit
  std::string arch;
  std::vector<std::pair<std::string, std::string>> lowered_names;  // name expression -> mangled name
};

// libnvrtc could not be opened (or lacks a function attnc needs).
class NvrtcUnavailable : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

// A program failed to compile. what() holds the log, the options and the generated source; the
// fields hold the same pieces for callers that present them differently.
class NvrtcError : public RuntimeError {
 public:
  NvrtcError(const std::string& message, std::string log, std::vector<std::string> options, std::string source);
  std::string log;
  std::vector<std::string> options;
  std::string source;  // the main translation unit followed by every generated header
};

// The NVRTC library, opened once per process (thread-safe). Compiling is thread-safe too.
class Nvrtc {
 public:
  // The process-wide instance; NvrtcUnavailable when libnvrtc cannot be opened.
  static const Nvrtc& get();
  // Whether get() would succeed (never throws).
  static bool available();
  // Why NVRTC cannot be used, or empty when it can.
  static std::string unavailable_reason();

  // "13.0": part of every kernel cache key, since another NVRTC may emit other code.
  std::string version() const;
  std::pair<int, int> version_numbers() const { return {major_, minor_}; }
  // The path (or soname) the library was opened from.
  const std::string& library() const { return library_; }

  // The options compile() passes for `options` (in order), for cache keys.
  static std::vector<std::string> command_options(const NvrtcOptions& options);

  // PTX and cubin for options.arch. NvrtcError when the program does not compile; RuntimeError for
  // an unknown architecture.
  CompiledKernel compile(const KernelProgram& program, const NvrtcOptions& options) const;

  struct Api;  // the resolved entry points (Nvrtc.cpp)

 private:
  Nvrtc() = default;
  const Api* api_ = nullptr;
  std::string library_;
  int major_ = 0, minor_ = 0;
};

}  // namespace attnc::cuda
