#include "runtime/cuda/CompileThroughCache.h"

#include <fmt/format.h>

namespace attnc::cuda {

void add_cuda_key_fields(KernelKey& key, const NvrtcOptions& options, const std::string& template_hash) {
  key.add("arch", options.arch);
  key.add("nvrtc", kAnyNvrtcVersion);
  key.add("template", template_hash);
  for (std::string& option : Nvrtc::command_options(options)) key.add("option", std::move(option));
}

CachedKernel compile_cuda_binary(const KernelProgram& program, const std::string& entry, const NvrtcOptions& options) {
  CompiledKernel compiled = Nvrtc::get().compile(program, options);
  CachedKernel kernel;
  kernel.payload.assign(compiled.cubin.begin(), compiled.cubin.end());
  kernel.metadata = fmt::format("entry={}\n", entry);
  return kernel;
}

CudaBinary compile_through_cache(KernelCache& cache, const KernelKey& key, const std::string& entry,
                                 const std::function<KernelProgram()>& make_program, const NvrtcOptions& options) {
  if (std::optional<KernelCache::Match> match = cache.find_ignoring(key, "nvrtc")) {
    return CudaBinary{std::move(match->key), std::move(match->kernel), match->source};
  }
  // Nothing cached by any NVRTC: this is the only path that loads it.
  if (!Nvrtc::available()) {
    throw NvrtcUnavailable(fmt::format(
        "the kernel {} is not in the kernel cache{} and NVRTC cannot compile it: {}", key.summary(),
        cache.has_disk() ? " (" + cache.directory().string() + ")" : std::string(), Nvrtc::unavailable_reason()));
  }
  KernelKey full = key.with("nvrtc", Nvrtc::get().version());
  CacheResult result =
      cache.get_or_compile(full, [&](const KernelKey&) { return compile_cuda_binary(make_program(), entry, options); });
  return CudaBinary{std::move(full), std::move(result.kernel), result.source};
}

KernelCache& default_kernel_cache() {
  static KernelCache cache{KernelCacheOptions{}};
  return cache;
}

}  // namespace attnc::cuda
