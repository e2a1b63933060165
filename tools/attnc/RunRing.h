#pragma once
// `mpirun -np P attnc run FILE ... --kernel ring`: ring attention over MPI (distributed/MpiRing.h).
// Every rank parses the same command line, loads FILE's mods with their tensor arguments and reads
// --mask (ring attention replicates them: they are indexed by global positions); rank 0 alone checks
// the outputs, reads q, k and v, scatters zig-zag shards, gathers the output and writes it.
//
// Failures. Before the ring starts, the ranks agree on whether every one of them is ready, so no rank
// waits forever for one that failed: the lowest failing rank reports its error (the others failed
// the same way, or not at all) and every rank exits non-zero. A failure inside the ring stops every
// rank; each failing rank reports, prefixed with its rank.

#include "tools/attnc/RunOptions.h"

namespace attnc::cli {

// The whole command on this rank; its exit status. RuntimeError when attnc was built without MPI.
int run_ring(const RunOptions& o);

}  // namespace attnc::cli
