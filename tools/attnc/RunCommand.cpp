// attnc run: attention with a file's mods over .npy tensors, on the CPU or (--device cuda) a GPU,
// through a contiguous or paged KV cache, or across MPI ranks (--kernel ring). The steps live in
// RunOptions (the command line), RunSteps (mods, mask, outputs), RunKernels (the local kernels),
// RunDevice, RunPaged, RunLinear and RunRing.

#include <cstdlib>
#include <optional>

#include "runtime/core/AtomicFile.h"
#include "runtime/core/Npy.h"
#include "tools/attnc/Command.h"
#include "tools/attnc/RunKernels.h"
#include "tools/attnc/RunOptions.h"
#include "tools/attnc/RunRing.h"
#include "tools/attnc/RunSteps.h"

namespace attnc::cli {

int run_run(Args args) {
  const std::optional<RunOptions> parsed = parse_run_options(args);
  if (!parsed) return kExitOk;  // --help
  const RunOptions& o = *parsed;
  if (o.kernel == RunKernel::Ring) return run_ring(o);
  // Where the results go is checked before anything is read or computed.
  check_output_path(o.out);
  if (!o.lse.empty()) check_output_path(o.lse);
  if (o.trust_shared_cache) ::setenv("ATTNC_CACHE_TRUST_SHARED", "1", 1);  // read by the runtime's kernel cache

  const RunMods mods = load_run_mods(o);
  const Tensor q = read_npy(o.q, o.dtype), k = read_npy(o.k, o.dtype), v = read_npy(o.v, o.dtype);
  const Tensor mask = read_run_mask(o);
  Tensor out = allocate_run_output(q, v);
  std::optional<Tensor> lse;
  if (!o.lse.empty()) lse = Tensor::empty(DType::F32, {q.size(0), q.size(1), q.size(2)});
  run_local_kernel(o, mods, q, k, v, mask, out, lse);
  write_run_outputs(o, out, lse);
  return kExitOk;
}

}  // namespace attnc::cli
