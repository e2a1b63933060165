#pragma once
// Ring attention over MPI (distributed/RingAttention.h has the algorithm; docs/distributed.md the
// sharding, the traffic per step and how to run it: `mpirun -np P ...`). MPI must be initialised by
// the caller (MPI_Init; no thread level beyond MPI_THREAD_SINGLE is needed: only the calling thread
// talks to MPI, the local kernel's worker threads never do).

#include <mpi.h>

#include <string>
#include <vector>

#include "distributed/RingAttention.h"

namespace attnc::distributed {

// The ring over a communicator: rank r sends to r + 1 and receives from r - 1 with MPI_Isend /
// MPI_Irecv, posted before a step's local blocks and completed after them, so the transfer overlaps
// the computation. Between blocks it calls MPI_Testall: without an asynchronous progress thread
// (OpenMPI's default), a large message's rendezvous moves on only inside MPI calls. Messages above
// 1 GiB go in pieces (MPI counts are ints). The communicator must outlive the transport.
class MpiTransport final : public RingTransport {
 public:
  explicit MpiTransport(MPI_Comm comm);
  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  void start(const void* send, size_t send_bytes, void* receive, size_t receive_bytes) override;
  void progress() override;
  void wait() override;
  bool all_ok(bool ok) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, ranks_ = 1, step_ = 0;
  std::vector<MPI_Request> requests_;
};

// ring_attention on `comm` for callers that hold their shards (geometry's cut of rank
// MPI_Comm_rank): every rank of `comm` calls it. First every rank checks that all pass the same
// geometry, dtypes, sizes, scale and mods (by signature; tensor arguments are not compared):
// RuntimeError on every rank otherwise, naming what differs from rank 0.
void ring_attention(MPI_Comm comm, const Tensor& q_shard, const Tensor& k_shard, const Tensor& v_shard,
                    Tensor& out_shard, const RingGeometry& geometry, const AttentionOptions& options = {},
                    const RingOptions& ring = {}, Tensor* lse_shard = nullptr);

// The whole call from whole tensors on rank `root` (what `mpirun -np P attnc run ... --kernel ring`
// runs): root checks q (B, H, Sq, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) and out (B, H, Sq, Dv),
// broadcasts the sizes and dtypes, sends every rank its Q, K and V shards (`layout` cut), the ring
// runs, and root gathers every rank's output (and LSE, when `lse` is given: fp32 (B, H, Sq),
// allocated when undefined) into `out` in out's dtype. Other ranks pass undefined tensors for q, k,
// v and out (ignored). Mods must be given on every rank, fully bound, with the whole tensors (each
// rank reads the same files); they are checked as ring_attention checks them.
void ring_attention_from_root(MPI_Comm comm, int root, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                              const AttentionOptions& options = {}, ShardLayout layout = ShardLayout::ZigZag,
                              const RingOptions& ring = {}, Tensor* lse = nullptr);

// What every rank must agree on, as text (the consistency check above compares these).
std::string ring_call_description(const RingGeometry& geometry, const Tensor& q_shard, const Tensor& k_shard,
                                  const Tensor& v_shard, const AttentionOptions& options);

}  // namespace attnc::distributed
