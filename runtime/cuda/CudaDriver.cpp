#include "runtime/cuda/CudaDriver.h"

#include <dlfcn.h>

#include <fmt/format.h>

namespace attnc::cuda {

namespace {

// The driver API's C declarations, written here so the build needs no CUDA headers (cuda.h).
using CUresult = int;
using CUdevice = int;
constexpr CUresult kCudaSuccess = 0;
constexpr int kAttributeMultiprocessors = 16;  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
constexpr int kAttributeCapabilityMajor = 75;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttributeCapabilityMinor = 76;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
constexpr int kAttributeMaxSharedOptin = 97;   // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
constexpr int kFunctionMaxDynamicShared = 8;   // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

}  // namespace

struct CudaDriver::Api {
  CUresult (*Init)(unsigned);
  CUresult (*DriverGetVersion)(int*);
  CUresult (*GetErrorName)(CUresult, const char**);
  CUresult (*GetErrorString)(CUresult, const char**);
  CUresult (*DeviceGetCount)(int*);
  CUresult (*DeviceGet)(CUdevice*, int);
  CUresult (*DeviceGetName)(char*, int, CUdevice);
  CUresult (*DeviceGetAttribute)(int*, int, CUdevice);
  CUresult (*DevicePrimaryCtxRetain)(CuContext*, CUdevice);
  CUresult (*CtxSetCurrent)(CuContext);
  CUresult (*CtxSynchronize)();
  CUresult (*StreamSynchronize)(CuStream);
  CUresult (*ModuleLoadData)(CuModule*, const void*);
  CUresult (*ModuleUnload)(CuModule);
  CUresult (*ModuleGetFunction)(CuFunction*, CuModule, const char*);
  CUresult (*FuncSetAttribute)(CuFunction, int, int);
  CUresult (*LaunchKernel)(CuFunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CuStream,
                           void**, void**);
  CUresult (*MemAlloc)(CuDevicePtr*, size_t);
  CUresult (*MemFree)(CuDevicePtr);
  CUresult (*MemcpyHtoD)(CuDevicePtr, const void*, size_t);
  CUresult (*MemcpyDtoH)(void*, CuDevicePtr, size_t);
  CUresult (*MemsetD8)(CuDevicePtr, unsigned char, size_t);
  // Optional (CUDA 12 drivers and newer): tensor maps for TMA.
  CUresult (*TensorMapEncodeTiled)(void*, int, uint32_t, void*, const uint64_t*, const uint64_t*, const uint32_t*,
                                   const uint32_t*, int, int, int, int);
};

namespace {

struct Loaded {
  CudaDriver::Api api{};
  std::string error;  // empty when usable
};

template <typename F>
void resolve(void* handle, const char* name, F& slot, std::string& missing) {
  slot = reinterpret_cast<F>(dlsym(handle, name));
  if (slot == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(name);
}

Loaded load() {
  Loaded loaded;
  void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    loaded.error =
        "no CUDA driver (libcuda.so.1) on this machine; a GPU and its driver are needed to load and run "
        "kernels (compiling to PTX or cubin works without them)";
    return loaded;
  }
  CudaDriver::Api& a = loaded.api;
  std::string missing;
  // The _v2 names are the current ABI of the calls cuda.h renames with #define.
  resolve(handle, "cuInit", a.Init, missing);
  resolve(handle, "cuDriverGetVersion", a.DriverGetVersion, missing);
  resolve(handle, "cuGetErrorName", a.GetErrorName, missing);
  resolve(handle, "cuGetErrorString", a.GetErrorString, missing);
  resolve(handle, "cuDeviceGetCount", a.DeviceGetCount, missing);
  resolve(handle, "cuDeviceGet", a.DeviceGet, missing);
  resolve(handle, "cuDeviceGetName", a.DeviceGetName, missing);
  resolve(handle, "cuDeviceGetAttribute", a.DeviceGetAttribute, missing);
  resolve(handle, "cuDevicePrimaryCtxRetain", a.DevicePrimaryCtxRetain, missing);
  resolve(handle, "cuCtxSetCurrent", a.CtxSetCurrent, missing);
  resolve(handle, "cuCtxSynchronize", a.CtxSynchronize, missing);
  resolve(handle, "cuStreamSynchronize", a.StreamSynchronize, missing);
  resolve(handle, "cuModuleLoadData", a.ModuleLoadData, missing);
  resolve(handle, "cuModuleUnload", a.ModuleUnload, missing);
  resolve(handle, "cuModuleGetFunction", a.ModuleGetFunction, missing);
  resolve(handle, "cuFuncSetAttribute", a.FuncSetAttribute, missing);
  resolve(handle, "cuLaunchKernel", a.LaunchKernel, missing);
  resolve(handle, "cuMemAlloc_v2", a.MemAlloc, missing);
  resolve(handle, "cuMemFree_v2", a.MemFree, missing);
  resolve(handle, "cuMemcpyHtoD_v2", a.MemcpyHtoD, missing);
  resolve(handle, "cuMemcpyDtoH_v2", a.MemcpyDtoH, missing);
  resolve(handle, "cuMemsetD8_v2", a.MemsetD8, missing);
  // Optional: a driver without it still runs every kernel but the Hopper family's.
  a.TensorMapEncodeTiled = reinterpret_cast<decltype(a.TensorMapEncodeTiled)>(dlsym(handle, "cuTensorMapEncodeTiled"));
  if (!missing.empty()) {
    loaded.error = "the CUDA driver (libcuda.so.1) lacks " + missing + "; update the GPU driver";
    return loaded;
  }
  CUresult status = a.Init(0);
  if (status != kCudaSuccess) {
    const char* name = nullptr;
    a.GetErrorName(status, &name);
    loaded.error = fmt::format("the CUDA driver could not be initialised (cuInit: {})", name ? name : "?");
  }
  return loaded;
}

const Loaded& loaded() {
  static const Loaded instance = load();
  return instance;
}

}  // namespace

std::string CudaDeviceInfo::arch() const {
  return fmt::format("sm_{}{}{}", major, minor, major == 9 && minor == 0 ? "a" : "");
}

CudaDriver& CudaDriver::get() {
  static CudaDriver* instance = [] {
    const Loaded& l = loaded();
    if (!l.error.empty()) return static_cast<CudaDriver*>(nullptr);
    auto* driver = new CudaDriver();  // process lifetime, like the library handle
    driver->api_ = &l.api;
    return driver;
  }();
  if (instance == nullptr) throw CudaDriverUnavailable(loaded().error);
  return *instance;
}

bool CudaDriver::available() { return loaded().error.empty(); }

void CudaDriver::check(int status, const char* call) const {
  if (status == kCudaSuccess) return;
  const char* name = nullptr;
  const char* text = nullptr;
  api_->GetErrorName(status, &name);
  api_->GetErrorString(status, &text);
  throw RuntimeError(fmt::format("CUDA driver call {} failed: {} ({})", call, name ? name : "?", text ? text : "?"));
}

int CudaDriver::version() const {
  int v = 0;
  check(api_->DriverGetVersion(&v), "cuDriverGetVersion");
  return v;
}

int CudaDriver::device_count() const {
  int count = 0;
  check(api_->DeviceGetCount(&count), "cuDeviceGetCount");
  return count;
}

CudaDeviceInfo CudaDriver::device_info(int ordinal) const {
  CUdevice device = 0;
  check(api_->DeviceGet(&device, ordinal), "cuDeviceGet");
  CudaDeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  check(api_->DeviceGetName(name, sizeof name - 1, device), "cuDeviceGetName");
  info.name = name;
  int shared = 0;
  check(api_->DeviceGetAttribute(&info.major, kAttributeCapabilityMajor, device), "cuDeviceGetAttribute");
  check(api_->DeviceGetAttribute(&info.minor, kAttributeCapabilityMinor, device), "cuDeviceGetAttribute");
  check(api_->DeviceGetAttribute(&info.multiprocessors, kAttributeMultiprocessors, device), "cuDeviceGetAttribute");
  check(api_->DeviceGetAttribute(&shared, kAttributeMaxSharedOptin, device), "cuDeviceGetAttribute");
  info.max_shared_per_block_optin = static_cast<size_t>(shared);
  return info;
}

void CudaDriver::use_device(int ordinal) {
  CUdevice device = 0;
  check(api_->DeviceGet(&device, ordinal), "cuDeviceGet");
  CuContext context = nullptr;
  // Retained once per call and never released: the primary context lives as long as the process.
  check(api_->DevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  check(api_->CtxSetCurrent(context), "cuCtxSetCurrent");
}

CuModule CudaDriver::load_module(const void* image) const {
  CuModule module = nullptr;
  check(api_->ModuleLoadData(&module, image), "cuModuleLoadData");
  return module;
}

void CudaDriver::unload_module(CuModule module) const { check(api_->ModuleUnload(module), "cuModuleUnload"); }

CuFunction CudaDriver::get_function(CuModule module, const std::string& name) const {
  CuFunction function = nullptr;
  CUresult status = api_->ModuleGetFunction(&function, module, name.c_str());
  if (status != kCudaSuccess) check(status, ("cuModuleGetFunction(" + name + ")").c_str());
  return function;
}

void CudaDriver::set_max_dynamic_shared(CuFunction function, int bytes) const {
  check(api_->FuncSetAttribute(function, kFunctionMaxDynamicShared, bytes), "cuFuncSetAttribute");
}

void CudaDriver::launch(CuFunction function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                        unsigned block_y, unsigned block_z, unsigned shared_bytes, CuStream stream,
                        void** params) const {
  check(api_->LaunchKernel(function, grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes, stream, params,
                           nullptr),
        "cuLaunchKernel");
}

CuDevicePtr CudaDriver::allocate(size_t bytes) const {
  CuDevicePtr pointer = 0;
  check(api_->MemAlloc(&pointer, bytes), "cuMemAlloc");
  return pointer;
}

void CudaDriver::free(CuDevicePtr pointer) const { check(api_->MemFree(pointer), "cuMemFree"); }

void CudaDriver::copy_to_device(CuDevicePtr to, const void* from, size_t bytes) const {
  check(api_->MemcpyHtoD(to, from, bytes), "cuMemcpyHtoD");
}

void CudaDriver::copy_to_host(void* to, CuDevicePtr from, size_t bytes) const {
  check(api_->MemcpyDtoH(to, from, bytes), "cuMemcpyDtoH");
}

void CudaDriver::memset(CuDevicePtr to, uint8_t value, size_t bytes) const {
  check(api_->MemsetD8(to, value, bytes), "cuMemsetD8");
}

void CudaDriver::synchronize(CuStream stream) const {
  if (stream == nullptr) {
    check(api_->CtxSynchronize(), "cuCtxSynchronize");
  } else {
    check(api_->StreamSynchronize(stream), "cuStreamSynchronize");
  }
}

void CudaDriver::encode_tensor_map_tiled(void* map, TensorMapElement element, uint32_t rank, const void* global,
                                         const uint64_t* dims, const uint64_t* strides, const uint32_t* box,
                                         TensorMapSwizzle swizzle) const {
  if (api_->TensorMapEncodeTiled == nullptr) {
    throw RuntimeError("the CUDA driver has no cuTensorMapEncodeTiled (tensor maps need a CUDA 12 driver or newer)");
  }
  constexpr int kFloat16 = 6, kBfloat16 = 9;  // CU_TENSOR_MAP_DATA_TYPE_FLOAT16 / _BFLOAT16
  constexpr int kInterleaveNone = 0, kL2Promotion128B = 2, kOobFillZero = 0;  // CU_TENSOR_MAP_*
  const uint32_t element_strides[5] = {1, 1, 1, 1, 1};
  check(api_->TensorMapEncodeTiled(map, element == TensorMapElement::BF16 ? kBfloat16 : kFloat16, rank,
                                   const_cast<void*>(global), dims, strides, box, element_strides, kInterleaveNone,
                                   static_cast<int>(swizzle), kL2Promotion128B, kOobFillZero),
        "cuTensorMapEncodeTiled");
}

CudaModule::CudaModule(const std::vector<char>& image) {
  if (image.empty()) throw RuntimeError("cannot load an empty kernel image");
  module_ = CudaDriver::get().load_module(image.data());
}

CudaModule::~CudaModule() {
  if (module_ == nullptr) return;
  try {
    CudaDriver::get().unload_module(module_);
  } catch (const RuntimeError&) {
    // A destructor cannot report; the context may already be gone at process exit.
  }
}

CuFunction CudaModule::function(const std::string& name) const { return CudaDriver::get().get_function(module_, name); }

}  // namespace attnc::cuda
