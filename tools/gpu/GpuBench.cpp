// attnc_gpu_bench: the attnc side of tools/gpu/check.sh's timing tables (tools/gpu/torch_peers.py
// prints the same rows for PyTorch). CSV rows `impl,kind,case,S,D,ms,rate,unit` on stdout, a
// readable line per row on stderr. Times: CUDA events, the median of --reps runs after --warmup.
//
//   forward  B=4, H=16, S in {2048, 8192}, D in {64, 128}, bf16; no mod, causal, ALiBi, causal
//            sliding window 1024, document mask (4 equal documents), softcap 20. Two impls:
//            attnc_flash (the sm_80 template, runtime/families/flash) and attnc_sm90 (attention()'s
//            choice on the card: the Hopper family on compute capability 9.0 unless ATTNC_NO_SM90=1;
//            tile maps built once per case with build_tile_map, as flex's block masks are). TFLOP/s
//            counts only unmasked work: 4 * B * H * D * kept (q, kv) pairs.
//   decode   issue 12's shape: q (8, 32, 1, 128), k/v (8, 8, 32768, 128) bf16: contiguous, paged
//            (16-token pages), and a causal sliding window of 4096 at the last position. GB/s of
//            K+V bytes the case must read (the window's rows only), beside `copy`: the same run's
//            device-to-device copy rate (read + write) over a buffer of the K+V size.
//   linear   causal linear attention, B=4, H=16, S in {2048, 8192}, D=128, bf16; TFLOP/s of the
//            chunkwise form's 4 * B * H * S * D * D.
//   backward attention_backward (the CUDA backward family) after one forward per case, B=4, H=16,
//            S in {2048, 8192}, D=128, bf16: no mod, causal, softcap 20; TFLOP/s counting 2.5x the
//            forward's unmasked work (five products against two), as torch_peers.py counts it.
//
// Usage: attnc_gpu_bench [--quick] [--reps N] [--warmup N] [--only forward|decode|linear|backward]
// (--quick: S=2048 only for forward, linear and backward)

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compiler/DType.h"
#include "runtime/Attention.h"
#include "runtime/Decoding.h"
#include "runtime/core/Mods.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/families/flash/FlashCuda.h"
#include "tools/gpu/GpuTiming.h"

using namespace attnc;
using namespace attnc::gpu_bench;

namespace {

struct Settings {
  bool quick = false;
  int reps = 10, warmup = 3;
  std::string only;
};

// Kept (q, kv) pairs of one (b, h) for each forward case, for the FLOP count.
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

// A built-in mod by case name, its tensor arguments on the device.
std::optional<Mod> score_mod_for(const std::string& name, int64_t heads) {
  std::optional<Mod> score;
  if (name == "alibi") score = alibi_mod(static_cast<int>(heads));
  if (name == "softcap") score = softcap_mod(20.0f);
  if (score) {
    for (size_t i = 0; i < score->def().params.size(); ++i) {
      if (const Tensor* t = std::get_if<Tensor>(&*score->argument(i))) {
        score->bind(score->def().params[i].name, cuda::to_device(*t));
      }
    }
  }
  return score;
}

void bench_forward(const Settings& settings, const std::string& arch, bool hopper) {
  const int64_t B = 4, H = 16;
  std::vector<int64_t> lengths = {2048};
  if (!settings.quick) lengths.push_back(8192);
  const std::vector<std::string> cases = {"none", "causal", "alibi", "sliding_window_1024", "document", "softcap"};
  KernelCache& cache = cuda::default_kernel_cache();
  for (int64_t S : lengths) {
    std::vector<int32_t> ids(static_cast<size_t>(B * S));  // 4 equal documents per sequence
    for (int64_t i = 0; i < B * S; ++i) ids[i] = static_cast<int32_t>((i % S) / (S / 4));
    const Tensor doc_ids = cuda::to_device(Tensor::from_vector(ids, {B, S}));
    for (int D : {64, 128}) {
      const Tensor q = random_device({B, H, S, D}, 1), k = random_device({B, H, S, D}, 2),
                   v = random_device({B, H, S, D}, 3);
      Tensor out = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
      for (const std::string& name : cases) {
        std::optional<Mod> score = score_mod_for(name, H), mask;
        if (name == "causal") mask = causal_mod();
        if (name == "sliding_window_1024") mask = sliding_window_mod(1024, true);
        if (name == "document") mask = document_mask_mod(doc_ids);
        AttentionOptions options;
        options.score_mod = score ? &*score : nullptr;
        options.mask_mod = mask ? &*mask : nullptr;
        const double flops = 4.0 * B * H * D * kept_pairs(name, S);

        flash::FlashSpec spec;
        spec.score = ModSpec::of(options.score_mod);
        spec.mask = ModSpec::of(options.mask_mod);
        spec.dtype = DType::BF16;
        spec.head_dim = spec.head_dim_v = D;
        spec.arch = arch;
        auto kernel = flash::load_flash_kernel(flash::plan_flash_kernel(spec), cache);
        double ms = median_ms([&] { kernel->launch(q, k, v, out, nullptr, options); }, settings.reps, settings.warmup);
        emit("attnc_flash", "forward", name, S, D, ms, flops / (ms * 1e-3) / 1e12, "TFLOP/s");

        if (hopper) {
          std::shared_ptr<const TileMap> map = build_tile_map(q, k, v, options);
          options.tile_map = map.get();
          ms = median_ms([&] { attention(q, k, v, out, options); }, settings.reps, settings.warmup);
          emit("attnc_sm90", "forward", name, S, D, ms, flops / (ms * 1e-3) / 1e12, "TFLOP/s");
        }
      }
    }
  }
}

void bench_decode(const Settings& settings) {
  const int64_t B = 8, H = 32, HKV = 8, KV = 32768, D = 128, PAGE = 16, WINDOW = 4096;
  const double kv_bytes = 2.0 * B * HKV * KV * D * 2;
  const Tensor q = random_device({B, H, 1, D}, 11), k = random_device({B, HKV, KV, D}, 12),
               v = random_device({B, HKV, KV, D}, 13);
  Tensor out = cuda::empty_device_tensor(DType::BF16, {B, H, 1, D});
  // Memory-bound decoding gets more runs: each is a fraction of a millisecond.
  const int reps = std::max(settings.reps, 50), warmup = std::max(settings.warmup, 5);

  emit("device", "copy", "copy_kv_bytes", KV, D, 0, copy_rate_gbps(static_cast<size_t>(kv_bytes), reps), "GB/s");

  double ms = median_ms([&] { attention(q, k, v, out); }, reps, warmup);
  emit("attnc", "decode", "contiguous", KV, D, ms, kv_bytes / (ms * 1e-3) / 1e9, "GB/s");

  // The query at the last position; the window keeps the last 4096 keys.
  const Mod window = sliding_window_mod(static_cast<int>(WINDOW), true);
  AttentionOptions windowed;
  windowed.mask_mod = &window;
  windowed.q_offset = static_cast<int32_t>(KV - 1);
  ms = median_ms([&] { attention(q, k, v, out, windowed); }, reps, warmup);
  emit("attnc", "decode", "window_4096", KV, D, ms, 2.0 * B * HKV * WINDOW * D * 2 / (ms * 1e-3) / 1e9, "GB/s");

  PagedKVCacheConfig config;
  config.num_pages = B * KV / PAGE;
  config.page_size = static_cast<int32_t>(PAGE);
  config.kv_heads = HKV;
  config.head_dim = D;
  config.dtype = DType::BF16;
  config.device = Device::Cuda;
  config.max_sequences = B;
  config.max_pages_per_sequence = KV / PAGE;
  PagedKVCache cache = init_paged_kv_cache(config);
  std::vector<int32_t> sequences(static_cast<size_t>(B));
  std::iota(sequences.begin(), sequences.end(), 0);
  for (int32_t s : sequences) allocate_blocks(cache, s, KV);
  append_kv(cache, 0, sequences, k, v);
  ms = median_ms([&] { paged_attention(q, cache, sequences, out); }, reps, warmup);
  emit("attnc", "decode", "paged_16", KV, D, ms, kv_bytes / (ms * 1e-3) / 1e9, "GB/s");
}

void bench_linear(const Settings& settings) {
  const int64_t B = 4, H = 16, D = 128;
  std::vector<int64_t> lengths = {2048};
  if (!settings.quick) lengths.push_back(8192);
  for (int64_t S : lengths) {
    const Tensor q = random_device({B, H, S, D}, 21), k = random_device({B, H, S, D}, 22),
                 v = random_device({B, H, S, D}, 23);
    Tensor out = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
    const double ms = median_ms([&] { linear_attention(q, k, v, out); }, settings.reps, settings.warmup);
    emit("attnc", "linear", "causal", S, D, ms, 4.0 * B * H * S * D * D / (ms * 1e-3) / 1e12, "TFLOP/s");
  }
}

void bench_backward(const Settings& settings) {
  const int64_t B = 4, H = 16, D = 128;
  std::vector<int64_t> lengths = {2048};
  if (!settings.quick) lengths.push_back(8192);
  for (int64_t S : lengths) {
    const Tensor q = random_device({B, H, S, D}, 31), k = random_device({B, H, S, D}, 32),
                 v = random_device({B, H, S, D}, 33), dout = random_device({B, H, S, D}, 34);
    Tensor out = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
    Tensor lse = cuda::empty_device_tensor(DType::F32, {B, H, S});
    AttentionGradients grads;
    grads.dq = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
    grads.dk = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
    grads.dv = cuda::empty_device_tensor(DType::BF16, {B, H, S, D});
    for (const std::string name : {"none", "causal", "softcap"}) {
      std::optional<Mod> score = score_mod_for(name, H), mask;
      if (name == "causal") mask = causal_mod();
      AttentionOptions options;
      options.score_mod = score ? &*score : nullptr;
      options.mask_mod = mask ? &*mask : nullptr;
      attention(q, k, v, out, options, &lse);
      const double ms = median_ms([&] { attention_backward(q, k, v, out, lse, dout, grads, options); }, settings.reps,
                                  settings.warmup);
      const double flops = 2.5 * 4.0 * B * H * D * kept_pairs(name, S);
      emit("attnc_backward", "backward", name, S, D, ms, flops / (ms * 1e-3) / 1e12, "TFLOP/s");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      settings.quick = true;
    } else if (arg == "--reps" && i + 1 < argc) {
      settings.reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--warmup" && i + 1 < argc) {
      settings.warmup = std::max(0, std::atoi(argv[++i]));
    } else if (arg == "--only" && i + 1 < argc) {
      settings.only = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--reps N] [--warmup N] [--only forward|decode|linear|backward]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto wanted = [&](const char* section) { return settings.only.empty() || settings.only == section; };
  int failures = 0;
  try {
    cuda::CudaDriver& driver = cuda::CudaDriver::get();
    driver.use_device(0);
    const cuda::CudaDeviceInfo info = driver.device_info(0);
    const char* no_sm90 = std::getenv("ATTNC_NO_SM90");
    const bool hopper = info.arch().starts_with("sm_90") && !(no_sm90 != nullptr && std::string(no_sm90) == "1");
    std::fprintf(stderr, "attnc_gpu_bench: %s (%s); Hopper family %s\n", info.name.c_str(), info.arch().c_str(),
                 hopper ? "timed" : "not timed (not compute capability 9.0, or ATTNC_NO_SM90=1)");
    std::printf("impl,kind,case,S,D,ms,rate,unit\n");
    // A section that fails is reported and the others still run: one table with holes is more use
    // than none from a 15-minute lease.
    const std::pair<const char*, std::function<void()>> sections[] = {
        {"decode", [&] { bench_decode(settings); }},
        {"forward", [&] { bench_forward(settings, info.arch(), hopper); }},
        {"linear", [&] { bench_linear(settings); }},
        {"backward", [&] { bench_backward(settings); }},
    };
    for (const auto& [name, run] : sections) {
      if (!wanted(name)) continue;
      try {
        run();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "attnc_gpu_bench: %s section failed: %s\n", name, e.what());
        ++failures;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnc_gpu_bench: %s\n", e.what());
    return 3;
  }
  return failures == 0 ? 0 : 1;
}
