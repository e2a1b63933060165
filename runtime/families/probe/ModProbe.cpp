#include "runtime/families/probe/ModProbe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/CpuModAbi.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cpu/CpuModProgram.h"
#include "runtime/cuda/Architectures.h"
#include "runtime/cuda/BoundsReport.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/cuda/DeviceTensor.h"
#include "runtime/cuda/KernelSource.h"
#include "runtime/cuda/PackModParams.h"

namespace attnc::probe {

namespace {

constexpr const char* kRun = "mod probe";

const std::vector<cuda::SourceHeader>& family_headers() {
  static const std::vector<cuda::SourceHeader> headers = cuda::embedded_headers({"mod_probe.cuh"});
  return headers;
}

// A host vector in device memory, as a tensor that frees it.
template <typename T>
Tensor device_copy(const std::vector<T>& values, DType dtype, int64_t words_per_value) {
  Tensor host = Tensor::empty(dtype, {static_cast<int64_t>(values.size()) * words_per_value});
  if (!values.empty()) std::memcpy(host.data(), values.data(), values.size() * sizeof(T));
  return cuda::to_device(host);
}

}  // namespace

ProbePlan plan_probe_kernel(ProbeSpec spec) {
  if (spec.score && spec.score.def->kind != dsl::ModKind::Score) {
    throw RuntimeError(fmt::format("mod probe: mod '{}' is not a score mod", spec.score.def->name));
  }
  if (spec.mask && spec.mask.def->kind != dsl::ModKind::Mask) {
    throw RuntimeError(fmt::format("mod probe: mod '{}' is not a mask mod", spec.mask.def->name));
  }
  cuda::check_cuda_arch(spec.arch);
  ProbePlan plan;
  plan.key.family = kFamily;
  plan.key.add("score_mod", spec.score.signature_text());
  plan.key.add("mask_mod", spec.mask.signature_text());
  plan.key.add("check_bounds", spec.check_bounds ? "1" : "0");
  cuda::add_cuda_key_fields(plan.key, probe_nvrtc_options(spec), cuda::template_hash(family_headers()));
  plan.spec = std::move(spec);
  return plan;
}

ir::CudaModSource probe_mods(const ProbeSpec& spec) {
  ir::CudaCodegenOptions options;
  options.check_bounds = spec.check_bounds;
  return ir::generate_cuda_mods(spec.score.get(), spec.score.storage, spec.mask.get(), spec.mask.storage, options);
}

cuda::NvrtcOptions probe_nvrtc_options(const ProbeSpec& spec) {
  cuda::NvrtcOptions options;
  options.arch = spec.arch;
  return options;
}

cuda::KernelProgram probe_program(const ProbePlan& plan, const ir::CudaModSource& mods) {
  cuda::KernelProgram program;
  program.headers = family_headers();
  program.headers.push_back({cuda::kGeneratedModsHeader, mods.text, true});
  program.source = fmt::format("// attnc mod probe: {}{}\n#include \"{}\"\n#include \"mod_probe.cuh\"\n",
                               plan.spec.arch, mods.check_bounds ? " check_bounds" : "", cuda::kGeneratedModsHeader);
  return program;
}

void check_probe_inputs(const ProbeInputs& inputs) {
  if (inputs.scores.size() != inputs.points.size()) {
    throw RuntimeError(fmt::format("{}: {} scores for {} points; give one score per point", kRun, inputs.scores.size(),
                                   inputs.points.size()));
  }
  if (inputs.tiles.size() > inputs.points.size()) {
    throw RuntimeError(fmt::format("{}: {} tiles but only {} points; tile i takes its (b, h) and sizes from point i",
                                   kRun, inputs.tiles.size(), inputs.points.size()));
  }
}

ProbeResults probe_on_cpu(const ProbeInputs& inputs, const Mod* score, const Mod* mask, bool check_bounds) {
  check_probe_inputs(inputs);
  struct Compiled {
    const Mod* mod = nullptr;
    std::shared_ptr<const CpuModProgram> program;
    CpuModArgs args;
  };
  auto compile = [&](const Mod* mod) {
    Compiled c;
    if (mod == nullptr) return c;
    c.mod = mod;
    c.program = compile_cpu_program(*mod);
    c.args = CpuModArgs::pack(*mod, check_bounds);
    return c;
  };
  const Compiled s = compile(score), m = compile(mask);
  auto check = [&](const Compiled& c, const CpuBoundsReport& report) {
    if (!report.failed) return;
    throw RuntimeError(out_of_range_message(kRun, *c.mod, static_cast<uint32_t>(report.param), report.dim, report.index,
                                            report.extent, report.b, report.h, report.q_idx, report.kv_idx));
  };
  ProbeResults results;
  for (size_t i = 0; i < inputs.points.size(); ++i) {
    const attnc_abi::ModPoint& p = inputs.points[i];
    const TilePosition at{p.b, p.h, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
    float value = inputs.scores[i];
    CpuBoundsReport report;
    if (s.program) {
      s.program->apply(&value, 1, 1, 1, p.q_idx, p.kv_idx, at, s.args, &report);
      check(s, report);
    }
    results.scores.push_back(value);
    float kept = 0.0f;
    if (m.program) {
      m.program->apply(&kept, 1, 1, 1, p.q_idx, p.kv_idx, at, m.args, &report);
      check(m, report);
    }
    results.keep.push_back(kept == -INFINITY ? 0 : 1);
  }
  for (size_t i = 0; i < inputs.tiles.size(); ++i) {
    const attnc_abi::ModPoint& p = inputs.points[i];
    const attnc_abi::TileBox& t = inputs.tiles[i];
    const TilePosition at{p.b, p.h, p.q_len, p.kv_len, p.num_heads, p.num_kv_heads};
    results.classes.push_back(
        m.program ? static_cast<int>(m.program->classify(t.q_first, t.q_last, t.kv_first, t.kv_last, at, m.args))
                  : static_cast<int>(ir::TileClass::Full));
  }
  return results;
}

ProbeKernel::ProbeKernel(ProbePlan plan, KernelKey key, std::shared_ptr<const CachedKernel> binary,
                         ir::CudaModSource mods, int device)
    : plan_(std::move(plan)),
      key_(std::move(key)),
      binary_(std::move(binary)),
      mods_(std::move(mods)),
      device_(device) {
  if (key_.family != kFamily) {
    throw RuntimeError(
        fmt::format("kernel cache entry {} is a '{}' kernel, not a probe", key_.hash_hex(), key_.family));
  }
}

ProbeKernel::~ProbeKernel() = default;

ProbeResults ProbeKernel::run(const ProbeInputs& inputs, const Mod* score, const Mod* mask) const {
  check_probe_inputs(inputs);
  const std::vector<unsigned char> mod_bytes =
      cuda::pack_launch_mods(kRun, mods_, score, plan_.spec.score, mask, plan_.spec.mask);
  cuda::CudaDriver& driver = cuda::CudaDriver::get();
  cuda::CuFunction function = nullptr;
  {
    std::lock_guard guard(load_mutex_);
    driver.use_device(device_);
    if (!module_) module_ = std::make_unique<cuda::CudaModule>(std::vector<char>(cubin().begin(), cubin().end()));
    function = module_->function(kEntry);
  }
  const int count = static_cast<int>(inputs.points.size());
  const int tiles = static_cast<int>(inputs.tiles.size());
  static_assert(sizeof(attnc_abi::ModPoint) == 8 * sizeof(int32_t) &&
                sizeof(attnc_abi::TileBox) == 4 * sizeof(int32_t));
  const Tensor points = device_copy(inputs.points, DType::I32, 8);
  const Tensor scores = device_copy(inputs.scores, DType::F32, 1);
  const Tensor boxes = device_copy(inputs.tiles, DType::I32, 4);
  const Tensor out_scores = cuda::empty_device_tensor(DType::F32, {std::max(count, 1)});
  const Tensor out_keep = cuda::empty_device_tensor(DType::I32, {std::max(count, 1)});
  const Tensor out_classes = cuda::empty_device_tensor(DType::I32, {std::max(tiles, 1)});

  std::optional<attnc_abi::BoundsReport> report =
      cuda::launch_with_bounds_report(plan_.spec.check_bounds, nullptr, [&](void* bounds) {
        // The kernel's parameters in order (mod_probe.cuh); ModParams by value as packed bytes.
        void* points_ptr = points.data();
        void* scores_ptr = scores.data();
        void* out_scores_ptr = out_scores.data();
        void* out_keep_ptr = out_keep.data();
        void* boxes_ptr = boxes.data();
        void* out_classes_ptr = out_classes.data();
        int num_points = count, num_tiles = tiles;
        void* params[] = {const_cast<unsigned char*>(mod_bytes.data()),
                          &points_ptr,
                          &scores_ptr,
                          &num_points,
                          &out_scores_ptr,
                          &out_keep_ptr,
                          &boxes_ptr,
                          &num_tiles,
                          &out_classes_ptr,
                          &bounds};
        const unsigned blocks = static_cast<unsigned>(std::max((count + 127) / 128, 1));
        driver.launch(function, blocks, 1, 1, 128, 1, 1, 0, nullptr, params);
      });
  driver.synchronize(nullptr);
  if (report && report->failed != 0) throw RuntimeError(cuda::bounds_report_message(kRun, mods_, *report, score, mask));

  ProbeResults results;
  const Tensor host_scores = cuda::to_host(out_scores), host_keep = cuda::to_host(out_keep);
  const Tensor host_classes = cuda::to_host(out_classes);
  const float* s = static_cast<const float*>(host_scores.data());
  const int32_t* k = static_cast<const int32_t*>(host_keep.data());
  const int32_t* c = static_cast<const int32_t*>(host_classes.data());
  results.scores.assign(s, s + count);
  results.keep.assign(k, k + count);
  results.classes.assign(c, c + tiles);
  return results;
}

std::shared_ptr<const ProbeKernel> load_probe_kernel(const ProbePlan& plan, KernelCache& cache, int device) {
  ir::CudaModSource mods = probe_mods(plan.spec);
  cuda::CudaBinary binary = cuda::compile_through_cache(
      cache, plan.key, kEntry, [&] { return probe_program(plan, mods); }, probe_nvrtc_options(plan.spec));
  return std::make_shared<const ProbeKernel>(plan, std::move(binary.key), std::move(binary.kernel), std::move(mods),
                                             device);
}

}  // namespace attnc::probe
