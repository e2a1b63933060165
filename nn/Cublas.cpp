#include "nn/Cublas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

namespace attnc::nn {

namespace {

// cuBLAS's C API, declared here so the build needs no CUDA headers. These match cublas_api.h.
using cublasStatus = int;
using cublasHandle = void*;
constexpr cublasStatus kCublasSuccess = 0;
constexpr int kCublasOpN = 0;                      // CUBLAS_OP_N
constexpr int kMajor = 0, kMinor = 1, kPatch = 2;  // libraryPropertyType

#ifdef ATTNC_CUDA_ROOT
constexpr const char* kCudaRoot = ATTNC_CUDA_ROOT;
#else
constexpr const char* kCudaRoot = "/usr/local/cuda";
#endif

}  // namespace

struct Cublas::Api {
  cublasStatus (*Create)(cublasHandle*);
  cublasStatus (*Destroy)(cublasHandle);
  cublasStatus (*SetStream)(cublasHandle, void*);
  cublasStatus (*Sgemm)(cublasHandle, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
  cublasStatus (*GetProperty)(int, int*);
  const char* (*GetStatusString)(cublasStatus);  // may be null (older cuBLAS)
  std::string library;
};

namespace {

std::vector<std::string> candidate_paths() {
  if (const char* forced = std::getenv("ATTNC_CUBLAS_LIBRARY"); forced != nullptr && *forced != '\0') return {forced};
  std::vector<std::string> paths = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
  std::vector<std::string> roots;
  for (const char* variable : {"CUDA_HOME", "CUDA_PATH"}) {
    if (const char* root = std::getenv(variable); root != nullptr && *root != '\0') roots.emplace_back(root);
  }
  roots.emplace_back(kCudaRoot);
  for (const std::string& root : roots) {
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}) {
      paths.push_back(root + "/lib64/" + name);
    }
  }
  return paths;
}

struct Loaded {
  Cublas::Api api{};
  std::string error;  // empty when loaded
};

Loaded load() {
  Loaded loaded;
  std::string tried;
  void* handle = nullptr;
  for (const std::string& path : candidate_paths()) {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      loaded.api.library = path;
      break;
    }
    const char* why = dlerror();
    tried += fmt::format("\n  {}: {}", path, why != nullptr ? why : "not found");
  }
  if (handle == nullptr) {
    loaded.error =
        "cuBLAS (libcublas.so) could not be opened; install the CUDA toolkit's cuBLAS or set "
        "ATTNC_CUBLAS_LIBRARY to its path. Tried:" +
        tried;
    return loaded;
  }
  // Open for the life of the process, like the driver.
  std::string missing;
  auto resolve = [&](const char* name, auto& slot, bool required) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(handle, name));
    if (slot == nullptr && required) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  Cublas::Api& a = loaded.api;
  resolve("cublasCreate_v2", a.Create, true);
  resolve("cublasDestroy_v2", a.Destroy, true);
  resolve("cublasSetStream_v2", a.SetStream, true);
  resolve("cublasSgemm_v2", a.Sgemm, true);
  resolve("cublasGetProperty", a.GetProperty, true);
  resolve("cublasGetStatusString", a.GetStatusString, false);
  if (!missing.empty()) loaded.error = fmt::format("cuBLAS at {} lacks {}", a.library, missing);
  return loaded;
}

const Loaded& loaded() {
  static const Loaded instance = load();
  return instance;
}

std::string status_text(const Cublas::Api& api, cublasStatus status) {
  const char* text = api.GetStatusString != nullptr ? api.GetStatusString(status) : nullptr;
  return text != nullptr ? fmt::format("{} ({})", text, status) : fmt::format("cuBLAS status {}", status);
}

void check(const Cublas::Api& api, cublasStatus status, const char* call) {
  if (status != kCublasSuccess) throw RuntimeError(fmt::format("{} failed: {}", call, status_text(api, status)));
}

}  // namespace

Cublas& Cublas::get() {
  const Loaded& l = loaded();
  if (!l.error.empty()) throw CublasUnavailable(l.error);
  static Cublas instance = [&] {
    Cublas cublas;
    cublas.api_ = &l.api;
    return cublas;
  }();
  return instance;
}

bool Cublas::available() { return loaded().error.empty(); }

const std::string& Cublas::library() const { return api_->library; }

int Cublas::version() const {
  int major = 0, minor = 0, patch = 0;
  check(*api_, api_->GetProperty(kMajor, &major), "cublasGetProperty");
  check(*api_, api_->GetProperty(kMinor, &minor), "cublasGetProperty");
  check(*api_, api_->GetProperty(kPatch, &patch), "cublasGetProperty");
  return major * 10000 + minor * 100 + patch;
}

CublasHandle::CublasHandle() {
  const Cublas::Api& api = Cublas::get().api();
  check(api, api.Create(&handle_), "cublasCreate");
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) Cublas::get().api().Destroy(handle_);
}

void CublasHandle::set_stream(cuda::CuStream stream) {
  const Cublas::Api& api = Cublas::get().api();
  check(api, api.SetStream(handle_, stream), "cublasSetStream");
}

void CublasHandle::sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                         float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  if (m > kMax || n > kMax || k > kMax || lda > kMax || ldb > kMax || ldc > kMax) {
    throw RuntimeError(fmt::format("cublasSgemm: sizes {} x {} x {} exceed cuBLAS's int range", m, n, k));
  }
  if (m == 0 || n == 0) return;
  const Cublas::Api& api = Cublas::get().api();
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T: swap the operands and the m / n roles.
  check(api,
        api.Sgemm(handle_, kCublasOpN, kCublasOpN, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                  &alpha, b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc)),
        "cublasSgemm");
}

}  // namespace attnc::nn
