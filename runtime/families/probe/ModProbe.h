#pragma once
// The mod probe family: the smallest complete kernel around generated mod code
// (runtime/families/probe/mod_probe.cuh). It evaluates a score mod, a mask mod and the mask's tile
// classifier at explicit points and tiles, so the code a backend generates for a mod can be
// checked point by point against the interpreter: on a GPU (ProbeKernel, through NVRTC and the
// kernel cache like every family) and on the CPU (probe_on_cpu, through the CPU backend's compiled
// mod program). It is also the second family, which keeps the seam between families honest.
//
// The key's fields: score_mod, mask_mod, check_bounds, then the CUDA fields (arch, nvrtc, template,
// option...); the template field hashes mod_probe.cuh and what it includes.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "compiler/CudaCodegen.h"
#include "runtime/cache/KernelCache.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/Mod.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/kernels/mod_abi.cuh"

namespace attnc::probe {

inline constexpr const char* kFamily = "probe";
inline constexpr const char* kEntry = "attnc_mod_probe";

struct ProbeSpec {
  ModSpec score, mask;  // either may be empty
  std::string arch = "sm_80";
  bool check_bounds = false;
};

struct ProbePlan {
  ProbeSpec spec;
  KernelKey key;  // with the NVRTC version left open
};

// RuntimeError for a mod of the wrong kind or an unknown architecture.
ProbePlan plan_probe_kernel(ProbeSpec spec);
ir::CudaModSource probe_mods(const ProbeSpec& spec);
cuda::NvrtcOptions probe_nvrtc_options(const ProbeSpec& spec);
// mod_probe.cuh around the generated mods.
cuda::KernelProgram probe_program(const ProbePlan& plan, const ir::CudaModSource& mods);

// What to evaluate: point i gives (b, h, q_idx, kv_idx) and the call's sizes; scores[i] is the
// score the score mod receives there. Tile i is classified at the (b, h) and sizes of points[i].
struct ProbeInputs {
  std::vector<attnc_abi::ModPoint> points;
  std::vector<float> scores;              // one per point
  std::vector<attnc_abi::TileBox> tiles;  // at most one per point
};

struct ProbeResults {
  std::vector<float> scores;  // the score mod's result per point (the score itself without one)
  std::vector<int> keep;      // 1 where the mask keeps the point (every point without one)
  std::vector<int> classes;   // per tile: 0 EMPTY, 1 FULL, 2 PARTIAL
};

// RuntimeError when the inputs do not fit together (scores or tiles counts).
void check_probe_inputs(const ProbeInputs& inputs);

// The same evaluation on the CPU, by the CPU backend's compiled programs for the mods (the LLVM JIT
// where the build has it): each point is a 1x1 tile. With check_bounds an out-of-range index is a
// RuntimeError, as on the GPU.
ProbeResults probe_on_cpu(const ProbeInputs& inputs, const Mod* score, const Mod* mask, bool check_bounds);

// The probe compiled for a plan; runs on a GPU. Thread-safe; the module loads on first use.
class ProbeKernel {
 public:
  ProbeKernel(ProbePlan plan, KernelKey key, std::shared_ptr<const CachedKernel> binary, ir::CudaModSource mods,
              int device);
  ~ProbeKernel();
  const KernelKey& key() const { return key_; }
  const std::string& cubin() const { return binary_->payload; }

  // Copies the inputs to the device, evaluates every point and tile there, and copies the results
  // back. The mods must have the plan's signatures and be fully bound with CUDA tensors. With
  // check_bounds an out-of-range index is a RuntimeError naming it.
  ProbeResults run(const ProbeInputs& inputs, const Mod* score, const Mod* mask) const;

 private:
  ProbePlan plan_;
  KernelKey key_;
  std::shared_ptr<const CachedKernel> binary_;
  ir::CudaModSource mods_;
  int device_ = 0;
  mutable std::mutex load_mutex_;
  mutable std::unique_ptr<cuda::CudaModule> module_;
};

std::shared_ptr<const ProbeKernel> load_probe_kernel(const ProbePlan& plan, KernelCache& cache, int device = 0);

}  // namespace attnc::probe
