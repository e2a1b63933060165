#include "tools/gpu/GpuTiming.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <type_traits>

#include "compiler/DType.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"

namespace attnc::gpu_bench {

namespace {

// The driver calls the bench needs beyond CudaDriver's (libcuda.so.1 is already loaded by then, so
// this dlopen returns the same handle).
struct DriverExtras {
  using Event = void*;
  int (*event_create)(Event*, unsigned) = nullptr;
  int (*event_record)(Event, void*) = nullptr;
  int (*event_synchronize)(Event) = nullptr;
  int (*event_elapsed)(float*, Event, Event) = nullptr;
  int (*event_destroy)(Event) = nullptr;
  int (*memcpy_dtod)(uint64_t, uint64_t, size_t) = nullptr;
  int (*mem_alloc)(uint64_t*, size_t) = nullptr;
  int (*mem_free)(uint64_t) = nullptr;

  static const DriverExtras& get() {
    static const DriverExtras extras;
    return extras;
  }

 private:
  DriverExtras() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) throw std::runtime_error("cannot open libcuda.so.1");
    auto find = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (fn == nullptr) throw std::runtime_error(std::string("the CUDA driver has no ") + name);
    };
    find(event_create, "cuEventCreate");
    find(event_record, "cuEventRecord");
    find(event_synchronize, "cuEventSynchronize");
    find(event_elapsed, "cuEventElapsedTime");
    find(event_destroy, "cuEventDestroy_v2");
    find(memcpy_dtod, "cuMemcpyDtoD_v2");
    find(mem_alloc, "cuMemAlloc_v2");
    find(mem_free, "cuMemFree_v2");
  }
};

void check(int status, const char* call) {
  if (status != 0) throw std::runtime_error(std::string(call) + " failed with CUresult " + std::to_string(status));
}

}  // namespace

double median_ms(const std::function<void()>& run, int reps, int warmup) {
  const DriverExtras& d = DriverExtras::get();
  for (int i = 0; i < warmup; ++i) run();
  cuda::CudaDriver::get().synchronize();
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    DriverExtras::Event start = nullptr, stop = nullptr;
    check(d.event_create(&start, 0), "cuEventCreate");
    check(d.event_create(&stop, 0), "cuEventCreate");
    check(d.event_record(start, nullptr), "cuEventRecord");
    run();
    check(d.event_record(stop, nullptr), "cuEventRecord");
    check(d.event_synchronize(stop), "cuEventSynchronize");
    float ms = 0;
    check(d.event_elapsed(&ms, start, stop), "cuEventElapsedTime");
    times.push_back(ms);
    d.event_destroy(start);
    d.event_destroy(stop);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double copy_rate_gbps(size_t bytes, int reps) {
  const DriverExtras& d = DriverExtras::get();
  uint64_t from = 0, to = 0;
  check(d.mem_alloc(&from, bytes), "cuMemAlloc");
  check(d.mem_alloc(&to, bytes), "cuMemAlloc");
  double ms = 0;
  try {
    ms = median_ms([&] { check(d.memcpy_dtod(to, from, bytes), "cuMemcpyDtoD"); }, reps, 3);
  } catch (...) {
    d.mem_free(from);
    d.mem_free(to);
    throw;
  }
  d.mem_free(from);
  d.mem_free(to);
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

Tensor random_device(std::vector<int64_t> shape, uint64_t seed) {
  Tensor host = Tensor::empty(DType::BF16, std::move(shape));
  auto* bits = static_cast<uint16_t*>(host.data());
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < host.numel(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const float value = static_cast<float>(static_cast<int64_t>(x >> 40) - (1 << 23)) / (1 << 23);  // [-1, 1)
    bits[i] = float_to_bfloat16(value);
  }
  return cuda::to_device(host);
}

void emit(const std::string& impl, const std::string& kind, const std::string& name, int64_t s, int64_t d, double ms,
          double rate, const std::string& unit) {
  std::printf("%s,%s,%s,%lld,%lld,%.4f,%.1f,%s\n", impl.c_str(), kind.c_str(), name.c_str(), static_cast<long long>(s),
              static_cast<long long>(d), ms, rate, unit.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "  %-12s %-8s %-20s S=%-6lld D=%-4lld %9.3f ms %8.1f %s\n", impl.c_str(), kind.c_str(),
               name.c_str(), static_cast<long long>(s), static_cast<long long>(d), ms, rate, unit.c_str());
}

}  // namespace attnc::gpu_bench
