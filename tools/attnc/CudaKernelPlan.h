#pragma once
// The CUDA kernel that `attnc compile` emits and `attnc warmup` caches, for any of the families a
// GPU call can run: the flash family (sm_80 template, every architecture), the Hopper family
// (sm_90a only) and the decode family (short queries). Both commands describe a kernel the same way
// (mods, dtype, head dims, architecture, family) and get back the family's own plan: the same key,
// entry point, NVRTC options and name-free source the runtime compiles, so a kernel built by either
// is a cache hit for the runtime and for the other.
//
// "auto" is the family attention() runs for a query of more than 16 rows on that architecture: the
// Hopper family on sm_90a for the inputs it takes (bf16/fp16, head dims 64, 128, 192, 256), the
// flash family otherwise. The decode family is never chosen automatically here: it is asked for by
// name with the number of query rows per KV head (GQA group size x q_len), which picks its layout.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/DType.h"
#include "runtime/cache/KernelKey.h"
#include "runtime/core/ModSpec.h"
#include "runtime/cuda/Nvrtc.h"

namespace attnc::cli {

enum class CudaFamily { Auto, Flash, FlashSm90, Decode };

// "auto", "flash", "flash_sm90", "decode" and back; nullopt for anything else.
std::optional<CudaFamily> parse_cuda_family(std::string_view name);
const char* cuda_family_name(CudaFamily family);
// "auto, flash, flash_sm90 or decode", for help texts and messages.
std::string cuda_family_list();

struct CudaKernelRequest {
  ModSpec score, mask;
  DType dtype = DType::BF16;
  int head_dim = 128, head_dim_v = 128;
  std::string arch = "sm_80";
  bool check_bounds = false;
  CudaFamily family = CudaFamily::Auto;
  int decode_rows = 1;  // decode only: query rows per KV head
};

// The family a request names, with Auto resolved for its architecture, dtype and head dims (never
// Auto). Needs no mods; cheap.
CudaFamily resolve_cuda_family(const CudaKernelRequest& request);

// A request's reason to be refused before any planning, or empty: the Hopper family asked for on
// an architecture other than sm_90a, or decode rows below 1.
std::string cuda_request_problem(const CudaKernelRequest& request);

struct PlannedCudaKernel {
  CudaFamily family = CudaFamily::Flash;  // resolved
  std::string entry;                      // the entry point the kernel cache records
  std::vector<std::string> entries;       // every entry point of the translation unit
  std::string layout;                     // the family's tiles, for messages ("m128_n128_s2")
  KernelKey key;                          // NVRTC version left open
  cuda::NvrtcOptions nvrtc_options;
  // The translation unit; annotate_names names the mods in comments (for readers of --emit cuda;
  // the cache compiles the name-free text).
  std::function<cuda::KernelProgram(bool annotate_names)> program;
};

// The plan of the family's own planner. RuntimeError for what cuda_request_problem() says and for
// what the family refuses (head dims, dtypes, mods of the wrong kind).
PlannedCudaKernel plan_cuda_kernel(const CudaKernelRequest& request);

}  // namespace attnc::cli
