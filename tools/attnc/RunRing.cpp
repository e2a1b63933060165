#include "tools/attnc/RunRing.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "dsl/Diagnostics.h"
#include "runtime/core/AtomicFile.h"
#include "runtime/core/AttentionChecks.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Npy.h"
#include "runtime/core/RuntimeError.h"
#include "tools/attnc/RunKernels.h"
#include "tools/attnc/RunSteps.h"

#if ATTNC_HAVE_MPI
#include <mpi.h>

#include "distributed/MpiRing.h"
#endif

namespace attnc::cli {

#if ATTNC_HAVE_MPI

namespace {

// MPI from the start of the command to its end, whichever way it ends (an exception included), so
// that every rank finalizes.
class MpiSession {
 public:
  MpiSession() {
    MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  }
  ~MpiSession() { MPI_Finalize(); }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }

  // The ranks on this rank's machine: they share its cores.
  int local_ranks() const {
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    int size = 1;
    MPI_Comm_size(local, &size);
    MPI_Comm_free(&local);
    return size;
  }

 private:
  int rank_ = 0, ranks_ = 1;
};

// A collective: every rank says whether it failed. Returns 0 when none did. Otherwise the failing
// rank that is to report (the lowest; every failing one with `every_failure_reports`, prefixed with
// its rank) writes its error to stderr as the CLI would, and only then, after a barrier, does any
// rank return the exit status to leave with. Leaving first lost the message under load: the first
// rank to exit non-zero makes mpirun kill the others, the reporter among them.
int settle(const MpiSession& mpi, std::exception_ptr failure, bool every_failure_reports) {
  int failed = failure ? 1 : 0;
  std::vector<int> all(static_cast<size_t>(mpi.ranks()));
  MPI_Allgather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int lowest = -1;
  for (int r = 0; r < mpi.ranks() && lowest < 0; ++r) {
    if (all[static_cast<size_t>(r)] != 0) lowest = r;
  }
  if (lowest < 0) return kExitOk;
  int status = kExitRuntime;
  if (failure && (every_failure_reports || mpi.rank() == lowest)) {
    const std::string prefix = every_failure_reports ? fmt::format("rank {} of {}: ", mpi.rank(), mpi.ranks()) : "";
    try {
      std::rethrow_exception(failure);
    } catch (const attnc::dsl::CompileError& e) {
      std::fputs(e.what(), stderr);
      status = kExitCompileError;
    } catch (const RuntimeError& e) {
      fmt::print(stderr, "attnc run: error: {}{}\n", prefix, in_user_terms(e.what()));
    } catch (const std::exception& e) {
      fmt::print(stderr, "attnc run: error: {}{}\n", prefix, e.what());
    }
    std::fflush(stderr);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return status;
}

}  // namespace

int run_ring(const RunOptions& o) {
  MpiSession mpi;
  const bool root = mpi.rank() == 0;
  RunMods mods;
  Tensor q, k, v, out, mask;
  std::optional<Tensor> lse;
  std::exception_ptr failure;
  try {
    if (root) {
      // Where the results go is checked before anything is read or computed.
      check_output_path(o.out);
      if (!o.lse.empty()) check_output_path(o.lse);
    }
    mods = load_run_mods(o);
    mask = read_run_mask(o);
    if (root) {
      q = read_npy(o.q, o.dtype), k = read_npy(o.k, o.dtype), v = read_npy(o.v, o.dtype);
      out = allocate_run_output(q, v);
      if (!o.lse.empty()) lse = Tensor::empty(DType::F32, {q.size(0), q.size(1), q.size(2)});
      check_attention_args("", q, k, v, out, run_attention_options(o, mods), lse ? &*lse : nullptr);
      check_run_mask(o, mask, q, k);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (int status = settle(mpi, failure, false)) return status;

  try {
    const MaskedOptions options = with_mask(run_attention_options(o, mods), mask);
    distributed::RingOptions ring;
    // The ranks on one machine share its cores.
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    ring.flash.num_threads = std::max(1, cores / mpi.local_ranks());
    distributed::ring_attention_from_root(MPI_COMM_WORLD, 0, q, k, v, out, options, distributed::ShardLayout::ZigZag,
                                          ring, lse ? &*lse : nullptr);
  } catch (...) {
    failure = std::current_exception();
  }
  if (int status = settle(mpi, failure, true)) return status;
  if (root) write_run_outputs(o, out, lse);
  return kExitOk;
}

#else

int run_ring(const RunOptions&) {
  throw RuntimeError("--kernel ring needs MPI, and this attnc was built without it (install OpenMPI and rebuild)");
}

#endif

}  // namespace attnc::cli
