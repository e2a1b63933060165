#include "runtime/cuda/Nvrtc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "runtime/cuda/Architectures.h"

namespace attnc::cuda {

namespace {

// NVRTC's C API, declared here so the build needs no CUDA headers. These match nvrtc.h.
using nvrtcResult = int;
using nvrtcProgram = struct NvrtcProgramOpaque*;
constexpr nvrtcResult kNvrtcSuccess = 0;

// The directory of the CUDA toolkit found at configure time, as a last resort.
#ifdef ATTNC_CUDA_ROOT
constexpr const char* kCudaRoot = ATTNC_CUDA_ROOT;
#else
constexpr const char* kCudaRoot = "/usr/local/cuda";
#endif

}  // namespace

struct Nvrtc::Api {
  const char* (*GetErrorString)(nvrtcResult);
  nvrtcResult (*Version)(int*, int*);
  nvrtcResult (*CreateProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*);
  nvrtcResult (*DestroyProgram)(nvrtcProgram*);
  nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char* const*);
  nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t*);
  nvrtcResult (*GetPTX)(nvrtcProgram, char*);
  nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t*);
  nvrtcResult (*GetCUBIN)(nvrtcProgram, char*);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t*);
  nvrtcResult (*GetProgramLog)(nvrtcProgram, char*);
  nvrtcResult (*AddNameExpression)(nvrtcProgram, const char*);
  nvrtcResult (*GetLoweredName)(nvrtcProgram, const char*, const char**);
};

namespace {

// Where to look for the library, in order. ATTNC_NVRTC_LIBRARY, when set, is the only candidate.
std::vector<std::string> candidate_paths() {
  if (const char* forced = std::getenv("ATTNC_NVRTC_LIBRARY"); forced != nullptr && *forced != '\0') {
    return {forced};
  }
  std::vector<std::string> paths = {"libnvrtc.so.13", "libnvrtc.so"};
  for (const char* variable : {"CUDA_HOME", "CUDA_PATH"}) {
    if (const char* root = std::getenv(variable); root != nullptr && *root != '\0') {
      paths.push_back(std::string(root) + "/lib64/libnvrtc.so.13");
      paths.push_back(std::string(root) + "/lib64/libnvrtc.so");
    }
  }
  paths.push_back(std::string(kCudaRoot) + "/lib64/libnvrtc.so.13");
  paths.push_back(std::string(kCudaRoot) + "/lib64/libnvrtc.so");
  return paths;
}

struct Loaded {
  Nvrtc::Api api{};
  std::string library;
  int major = 0, minor = 0;
  std::string error;  // empty when loaded
};

template <typename F>
bool resolve(void* handle, const char* name, F& slot, std::string& missing) {
  slot = reinterpret_cast<F>(dlsym(handle, name));
  if (slot == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return slot != nullptr;
}

Loaded load() {
  Loaded loaded;
  std::string tried;
  void* handle = nullptr;
  for (const std::string& path : candidate_paths()) {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      loaded.library = path;
      break;
    }
    const char* why = dlerror();
    tried += fmt::format("\n  {}: {}", path, why != nullptr ? why : "not found");
  }
  if (handle == nullptr) {
    loaded.error =
        "NVRTC (libnvrtc.so.13) could not be opened; install the CUDA toolkit's NVRTC or set "
        "ATTNC_NVRTC_LIBRARY to its path. Tried:" +
        tried;
    return loaded;
  }
  // The handle stays open for the life of the process: compiled programs may be in flight anywhere.
  Nvrtc::Api& a = loaded.api;
  std::string missing;
  resolve(handle, "nvrtcGetErrorString", a.GetErrorString, missing);
  resolve(handle, "nvrtcVersion", a.Version, missing);
  resolve(handle, "nvrtcCreateProgram", a.CreateProgram, missing);
  resolve(handle, "nvrtcDestroyProgram", a.DestroyProgram, missing);
  resolve(handle, "nvrtcCompileProgram", a.CompileProgram, missing);
  resolve(handle, "nvrtcGetPTXSize", a.GetPTXSize, missing);
  resolve(handle, "nvrtcGetPTX", a.GetPTX, missing);
  resolve(handle, "nvrtcGetCUBINSize", a.GetCUBINSize, missing);
  resolve(handle, "nvrtcGetCUBIN", a.GetCUBIN, missing);
  resolve(handle, "nvrtcGetProgramLogSize", a.GetProgramLogSize, missing);
  resolve(handle, "nvrtcGetProgramLog", a.GetProgramLog, missing);
  resolve(handle, "nvrtcAddNameExpression", a.AddNameExpression, missing);
  resolve(handle, "nvrtcGetLoweredName", a.GetLoweredName, missing);
  if (!missing.empty()) {
    loaded.error = fmt::format("{} lacks {}: NVRTC 11.2 or newer is needed", loaded.library, missing);
    return loaded;
  }
  if (a.Version(&loaded.major, &loaded.minor) != kNvrtcSuccess) {
    loaded.error = fmt::format("{}: nvrtcVersion failed", loaded.library);
  }
  return loaded;
}

const Loaded& loaded() {
  static const Loaded instance = load();
  return instance;
}

// Frees an nvrtcProgram on every path out of compile().
struct ProgramGuard {
  const Nvrtc::Api* api;
  nvrtcProgram program = nullptr;
  ~ProgramGuard() {
    if (program != nullptr) api->DestroyProgram(&program);
  }
};

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string generated_source(const KernelProgram& program) {
  std::string out = fmt::format("// ---- {} ----\n{}", program.name, program.source);
  for (const SourceHeader& header : program.headers) {
    if (header.generated) out += fmt::format("\n// ---- {} ----\n{}", header.name, header.text);
  }
  return out;
}

}  // namespace

NvrtcError::NvrtcError(const std::string& message, std::string log_text, std::vector<std::string> options_used,
                       std::string source_text)
    : RuntimeError(fmt::format("{}\nNVRTC log:\n{}\noptions: {}\ngenerated source:\n{}", message, log_text,
                               join(options_used, " "), source_text)),
      log(std::move(log_text)),
      options(std::move(options_used)),
      source(std::move(source_text)) {}

const Nvrtc& Nvrtc::get() {
  static const Nvrtc* instance = [] {
    const Loaded& l = loaded();
    if (!l.error.empty()) return static_cast<Nvrtc*>(nullptr);
    auto* nvrtc = new Nvrtc();  // process lifetime, like the library handle
    nvrtc->api_ = &l.api;
    nvrtc->library_ = l.library;
    nvrtc->major_ = l.major;
    nvrtc->minor_ = l.minor;
    return nvrtc;
  }();
  if (instance == nullptr) throw NvrtcUnavailable(loaded().error);
  return *instance;
}

bool Nvrtc::available() { return loaded().error.empty(); }

std::string Nvrtc::unavailable_reason() { return loaded().error; }

std::string Nvrtc::version() const { return fmt::format("{}.{}", major_, minor_); }

std::vector<std::string> Nvrtc::command_options(const NvrtcOptions& options) {
  check_cuda_arch(options.arch);
  std::vector<std::string> out = {
      "--gpu-architecture=" + options.arch,
      "-std=c++17",
      // The generated code and the templates spell out every rounding they need (mod_abi.cuh), so
      // the defaults stay: IEEE division and sqrt, no fast math.
      "--fmad=true",
  };
  if (options.line_info) out.push_back("-lineinfo");
  out.insert(out.end(), options.extra.begin(), options.extra.end());
  return out;
}

CompiledKernel Nvrtc::compile(const KernelProgram& program, const NvrtcOptions& options) const {
  CompiledKernel result;
  result.options = command_options(options);
  result.source = program.source;
  result.arch = options.arch;
  const Api& a = *api_;

  auto fail = [&](const std::string& what, nvrtcResult code, const std::string& log) -> NvrtcError {
    return NvrtcError(fmt::format("NVRTC {}: {} ({} for {})", what, a.GetErrorString(code), program.name, options.arch),
                      log, result.options, generated_source(program));
  };

  std::vector<const char*> header_texts, header_names;
  for (const SourceHeader& header : program.headers) {
    header_texts.push_back(header.text.c_str());
    header_names.push_back(header.name.c_str());
  }
  ProgramGuard guard{&a};
  nvrtcResult status = a.CreateProgram(&guard.program, program.source.c_str(), program.name.c_str(),
                                       static_cast<int>(header_texts.size()), header_texts.data(), header_names.data());
  if (status != kNvrtcSuccess) throw fail("could not create the program", status, "");
  for (const std::string& expression : program.name_expressions) {
    status = a.AddNameExpression(guard.program, expression.c_str());
    if (status != kNvrtcSuccess) throw fail("rejected name expression '" + expression + "'", status, "");
  }

  std::vector<const char*> argv;
  for (const std::string& option : result.options) argv.push_back(option.c_str());
  nvrtcResult compiled = a.CompileProgram(guard.program, static_cast<int>(argv.size()), argv.data());

  size_t log_size = 0;
  if (a.GetProgramLogSize(guard.program, &log_size) == kNvrtcSuccess && log_size > 1) {
    result.log.resize(log_size);
    a.GetProgramLog(guard.program, result.log.data());
    result.log.resize(log_size - 1);  // drop the terminating NUL
  }
  if (compiled != kNvrtcSuccess) throw fail("failed to compile", compiled, result.log);

  size_t size = 0;
  status = a.GetPTXSize(guard.program, &size);
  if (status != kNvrtcSuccess) throw fail("returned no PTX", status, result.log);
  result.ptx.resize(size);
  a.GetPTX(guard.program, result.ptx.data());
  while (!result.ptx.empty() && result.ptx.back() == '\0') result.ptx.pop_back();

  status = a.GetCUBINSize(guard.program, &size);
  if (status != kNvrtcSuccess) throw fail("returned no cubin", status, result.log);
  result.cubin.resize(size);
  a.GetCUBIN(guard.program, result.cubin.data());

  for (const std::string& expression : program.name_expressions) {
    const char* lowered = nullptr;
    status = a.GetLoweredName(guard.program, expression.c_str(), &lowered);
    if (status != kNvrtcSuccess || lowered == nullptr)
      throw fail("has no lowered name for " + expression, status, result.log);
    result.lowered_names.emplace_back(expression, lowered);
  }
  return result;
}

}  // namespace attnc::cuda
