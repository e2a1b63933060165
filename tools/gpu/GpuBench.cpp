// attnc_gpu_bench: the attnc side of tools/gpu/check.sh's timing table. Times the CUDA
// flash-attention kernel for B=4, H=16, S in {2048, 8192}, D in {64, 128}, bf16, with no mod,
// causal, ALiBi, a causal sliding window of 1024, a document mask (4 equal documents per sequence)
// and softcap 20, and prints CSV rows `attnc,MOD,S,D,MS,TFLOPS` (tools/gpu/torch_peers.py prints
// the same rows for PyTorch). TFLOP/s counts only unmasked work: 4 * B * H * D * kept (q, kv)
// pairs. Times are CUDA events around each launch, the median of --reps runs after --warmup runs.
//
// Usage: attnc_gpu_bench [--quick] [--reps N] [--warmup N]   (--quick: S=2048 only)

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "compiler/DType.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/flash/FlashCuda.h"

using namespace attnc;

namespace {

// CUDA events from the driver (CudaDriver has no event calls; the library is already loaded, so
// this dlopen returns the same handle).
struct Events {
  using Event = void*;
  int (*create)(Event*, unsigned) = nullptr;
  int (*record)(Event, void*) = nullptr;
  int (*synchronize)(Event) = nullptr;
  int (*elapsed)(float*, Event, Event) = nullptr;
  int (*destroy)(Event) = nullptr;

  Events() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) throw std::runtime_error("cannot open libcuda.so.1");
    create = reinterpret_cast<decltype(create)>(dlsym(lib, "cuEventCreate"));
    record = reinterpret_cast<decltype(record)>(dlsym(lib, "cuEventRecord"));
    synchronize = reinterpret_cast<decltype(synchronize)>(dlsym(lib, "cuEventSynchronize"));
    elapsed = reinterpret_cast<decltype(elapsed)>(dlsym(lib, "cuEventElapsedTime"));
    destroy = reinterpret_cast<decltype(destroy)>(dlsym(lib, "cuEventDestroy_v2"));
    if (!create || !record || !synchronize || !elapsed || !destroy) throw std::runtime_error("no CUDA event API");
  }
  static void check(int status, const char* call) {
    if (status != 0) throw std::runtime_error(std::string(call) + " failed with CUresult " + std::to_string(status));
  }
};

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

// Kept (q, kv) pairs of one (b, h) for each mod, for the FLOP count.
double kept_pairs(const std::string& mod, int64_t s) {
  if (mod == "causal") return double(s) * (s + 1) / 2;
  if (mod == "sliding_window_1024") {
    double total = 0;
    for (int64_t q = 0; q < s; ++q) total += double(std::min<int64_t>(q + 1, 1024));
    return total;
  }
  if (mod == "document") return 4.0 * double(s / 4) * double(s / 4);
  return double(s) * s;  // none, alibi, softcap
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 10, warmup = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick")
      quick = true;
    else if (arg == "--reps" && i + 1 < argc)
      reps = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--warmup" && i + 1 < argc)
      warmup = std::max(0, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--reps N] [--warmup N]\n", argv[0]);
      return 2;
    }
  }
  try {
    cuda::CudaDriver& driver = cuda::CudaDriver::get();
    driver.use_device(0);
    const cuda::CudaDeviceInfo info = driver.device_info(0);
    std::fprintf(stderr, "attnc_gpu_bench: %s (%s)\n", info.name.c_str(), info.arch().c_str());
    Events events;
    KernelCache& cache = cuda::default_kernel_cache();
    const std::string arch = info.arch();
    const int64_t B = 4, H = 16;
    std::vector<int64_t> lengths = {2048};
    if (!quick) lengths.push_back(8192);
    const std::vector<std::string> mods = {"none", "causal", "alibi", "sliding_window_1024", "document", "softcap"};
    std::printf("impl,mod,S,D,ms,tflops\n");
    for (int64_t S : lengths) {
      // Document ids: 4 equal documents per sequence.
      std::vector<int32_t> ids(static_cast<size_t>(B * S));
      for (int64_t i = 0; i < B * S; ++i) ids[i] = static_cast<int32_t>((i % S) / (S / 4));
      const Tensor doc_ids = cuda::to_device(Tensor::from_vector(ids, {B, S}));
      for (int D : {64, 128}) {
        const Tensor q = random_device({B, H, S, D}, 1), k = random_device({B, H, S, D}, 2),
                     v = random_device({B, H, S, D}, 3);
        const Tensor out = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
        for (const std::string& name : mods) {
          std::optional<Mod> score, mask;
          if (name == "causal") mask = causal_mod();
          if (name == "alibi") score = alibi_mod(static_cast<int>(H));
          if (name == "sliding_window_1024") mask = sliding_window_mod(1024, true);
          if (name == "document") mask = document_mask_mod(doc_ids);
          if (name == "softcap") score = softcap_mod(20.0f);
          if (score) {
            // ALiBi's slopes are a CPU tensor; the launch needs them on the device.
            for (size_t i = 0; i < score->def().params.size(); ++i) {
              if (const Tensor* t = std::get_if<Tensor>(&*score->argument(i))) {
                score->bind(score->def().params[i].name, cuda::to_device(*t));
              }
            }
          }
          AttentionOptions options;
          options.score_mod = score ? &*score : nullptr;
          options.mask_mod = mask ? &*mask : nullptr;
          flash::FlashSpec spec;
          spec.score = ModSpec::of(options.score_mod);
          spec.mask = ModSpec::of(options.mask_mod);
          spec.dtype = DType::BF16;
          spec.head_dim = spec.head_dim_v = D;
          spec.arch = arch;
          auto kernel = flash::load_flash_kernel(flash::plan_flash_kernel(spec), cache);
          auto run = [&] { kernel->launch(q, k, v, out, nullptr, options); };
          for (int i = 0; i < warmup; ++i) run();
          driver.synchronize();
          std::vector<float> times;
          for (int i = 0; i < reps; ++i) {
            Events::Event start = nullptr, stop = nullptr;
            Events::check(events.create(&start, 0), "cuEventCreate");
            Events::check(events.create(&stop, 0), "cuEventCreate");
            Events::check(events.record(start, nullptr), "cuEventRecord");
            run();
            Events::check(events.record(stop, nullptr), "cuEventRecord");
            Events::check(events.synchronize(stop), "cuEventSynchronize");
            float ms = 0;
            Events::check(events.elapsed(&ms, start, stop), "cuEventElapsedTime");
            times.push_back(ms);
            events.destroy(start);
            events.destroy(stop);
          }
          std::sort(times.begin(), times.end());
          const double ms = times[times.size() / 2];
          const double flops = 4.0 * B * H * D * kept_pairs(name, S);
          std::printf("attnc,%s,%lld,%d,%.4f,%.1f\n", name.c_str(), static_cast<long long>(S), D, ms,
                      flops / (ms * 1e-3) / 1e12);
          std::fflush(stdout);
          std::fprintf(stderr, "  attnc %-20s S=%-5lld D=%-3d %8.3f ms %7.1f TFLOP/s (%s)\n", name.c_str(),
                       static_cast<long long>(S), D, ms, flops / (ms * 1e-3) / 1e12,
                       cache_source_name(kernel->source()));
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnc_gpu_bench: %s\n", e.what());
    return 3;
  }
  return 0;
}
