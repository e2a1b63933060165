#include "tools/attnc/CudaKernelPlan.h"

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"
#include "runtime/families/decode/DecodeSource.h"
#include "runtime/families/flash/FlashSource.h"
#include "runtime/families/flash_sm90/FlashSm90Source.h"

namespace attnc::cli {

namespace {

struct FamilyName {
  CudaFamily family;
  const char* name;
};

constexpr FamilyName kFamilyNames[] = {
    {CudaFamily::Auto, "auto"},
    {CudaFamily::Flash, flash::kFamily},
    {CudaFamily::FlashSm90, flash_sm90::kFamily},
    {CudaFamily::Decode, decode::kFamily},
};

PlannedCudaKernel plan_flash(const CudaKernelRequest& r) {
  flash::FlashSpec spec;
  spec.score = r.score;
  spec.mask = r.mask;
  spec.dtype = r.dtype;
  spec.head_dim = r.head_dim;
  spec.head_dim_v = r.head_dim_v;
  spec.arch = r.arch;
  spec.check_bounds = r.check_bounds;
  auto plan = std::make_shared<const flash::FlashPlan>(flash::plan_flash_kernel(std::move(spec)));
  PlannedCudaKernel out;
  out.family = CudaFamily::Flash;
  out.entry = flash::kEntry;
  out.entries = {flash::kEntry};
  out.layout = flash::to_string(plan->tile);
  out.key = plan->key;
  out.nvrtc_options = flash::flash_nvrtc_options(plan->spec);
  out.program = [plan](bool annotate) { return flash::flash_program(*plan, flash::flash_mods(plan->spec, annotate)); };
  return out;
}

PlannedCudaKernel plan_flash_sm90(const CudaKernelRequest& r) {
  flash_sm90::FlashSm90Spec spec;
  spec.score = r.score;
  spec.mask = r.mask;
  spec.dtype = r.dtype;
  spec.head_dim = r.head_dim;
  spec.head_dim_v = r.head_dim_v;
  spec.check_bounds = r.check_bounds;
  auto plan = std::make_shared<const flash_sm90::FlashSm90Plan>(flash_sm90::plan_flash_sm90_kernel(std::move(spec)));
  PlannedCudaKernel out;
  out.family = CudaFamily::FlashSm90;
  out.entry = flash_sm90::kEntry;
  out.entries = {flash_sm90::kEntry};
  out.layout = fmt::format("m{}_{}", flash_sm90::kBlockM, flash_sm90::to_string(plan->tiles));
  out.key = plan->key;
  out.nvrtc_options = flash_sm90::flash_sm90_nvrtc_options(plan->spec);
  out.program = [plan](bool annotate) {
    return flash_sm90::flash_sm90_program(*plan, flash_sm90::flash_sm90_mods(plan->spec, annotate));
  };
  return out;
}

PlannedCudaKernel plan_decode(const CudaKernelRequest& r) {
  decode::DecodeSpec spec;
  spec.score = r.score;
  spec.mask = r.mask;
  spec.dtype = r.dtype;
  spec.head_dim = r.head_dim;
  spec.head_dim_v = r.head_dim_v;
  spec.rows = r.decode_rows;
  spec.arch = r.arch;
  spec.check_bounds = r.check_bounds;
  auto plan = std::make_shared<const decode::DecodePlan>(decode::plan_decode_kernel(std::move(spec)));
  PlannedCudaKernel out;
  out.family = CudaFamily::Decode;
  out.entry = decode::kSplitEntry;  // the runtime caches the module under its split kernel
  out.entries = {decode::kSplitEntry, decode::kMergeEntry};
  out.layout = decode::to_string(plan->tile);
  out.key = plan->key;
  out.nvrtc_options = decode::decode_nvrtc_options(plan->spec);
  out.program = [plan](bool annotate) {
    return decode::decode_program(*plan, decode::decode_mods(plan->spec, annotate));
  };
  return out;
}

}  // namespace

std::optional<CudaFamily> parse_cuda_family(std::string_view name) {
  for (const FamilyName& entry : kFamilyNames) {
    if (name == entry.name) return entry.family;
  }
  return std::nullopt;
}

const char* cuda_family_name(CudaFamily family) {
  for (const FamilyName& entry : kFamilyNames) {
    if (entry.family == family) return entry.name;
  }
  return "?";
}

std::string cuda_family_list() {
  return fmt::format("{}, {}, {} or {}", kFamilyNames[0].name, kFamilyNames[1].name, kFamilyNames[2].name,
                     kFamilyNames[3].name);
}

CudaFamily resolve_cuda_family(const CudaKernelRequest& r) {
  if (r.family != CudaFamily::Auto) return r.family;
  const bool hopper = r.arch == flash_sm90::kArch && flash_sm90::supports_flash_sm90(r.dtype, r.head_dim, r.head_dim_v);
  return hopper ? CudaFamily::FlashSm90 : CudaFamily::Flash;
}

std::string cuda_request_problem(const CudaKernelRequest& r) {
  if (r.family == CudaFamily::FlashSm90 && r.arch != flash_sm90::kArch) {
    return fmt::format("the {} family builds for {} only, not {}", flash_sm90::kFamily, flash_sm90::kArch, r.arch);
  }
  if (r.family == CudaFamily::Decode && r.decode_rows < 1) {
    return fmt::format("the decode family needs at least 1 query row per KV head, not {}", r.decode_rows);
  }
  return "";
}

PlannedCudaKernel plan_cuda_kernel(const CudaKernelRequest& request) {
  if (std::string problem = cuda_request_problem(request); !problem.empty()) throw RuntimeError(problem);
  switch (resolve_cuda_family(request)) {
    case CudaFamily::FlashSm90: return plan_flash_sm90(request);
    case CudaFamily::Decode: return plan_decode(request);
    case CudaFamily::Auto:
    case CudaFamily::Flash: break;
  }
  return plan_flash(request);
}

}  // namespace attnc::cli
