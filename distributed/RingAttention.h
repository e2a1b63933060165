#pragma once
// Ring attention (Liu et al. 2023; attnax's ring_attention): attention over a sequence sharded
// across P ranks. Every rank keeps its shard of Q and, step by step, attends it to one K/V shard
// while the K/V shards rotate around the ring (rank r sends to r + 1 and receives from r - 1), so
// after P steps every query has seen every key. Each step's partial result (output and LSE of the
// local flash kernel, runtime/families/flash/FlashCpu.h) is merged into the rank's accumulator:
//   lse = log(exp(lse_a) + exp(lse_b)),  out = exp(lse_a - lse) out_a + exp(lse_b - lse) out_b
// where -inf (a block with no visible key) weighs exactly 0 (docs/semantics.md).
//
// Positions are global. A rank's shard is one or two segments of the sequence (distributed/
// Sharding.h); each (query segment, key segment) pair is one block, run by the flash kernel with
// AttentionOptions::q_offset at the query segment's first position (plus the call's own q_offset,
// which places the whole query sequence after cached keys, as in decoding) and the mods seen through
// block_view_mod (runtime/core/Mods.h), which adds the key segment's first position to kv_idx and
// gives q_len / kv_len the whole sequence's lengths: mods see exactly the (b, h, q_idx, kv_idx) of
// standard attention on the whole sequence, with one compiled program for every block. Before a
// block runs, the mask's tile classifier is asked about the whole block for every (b, h): a block
// that is EMPTY everywhere (a causal mask's upper blocks, a window's distant shards, other
// documents) is skipped without loading or computing anything.
//
// Tensor arguments of mods are indexed by global positions, so every rank passes the whole
// tensors (document ids [B, S], an ALiBi slope table, a mask tensor): replicated, not rotated.
// Rotating them would need each mod rewritten into query-side and key-side tensors, possible only
// for mods that index by exactly q_idx or kv_idx; replicating a per-position tensor costs each rank
// one copy of O(S) values, the same bytes the rotation would move, and works for every mod. A dense
// (Sq, Skv) mask tensor is the exception (quadratic on every rank): use a mask mod instead.
//
// docs/distributed.md: the sharding, what moves per step, the MPI transport and the GPU design.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "distributed/Sharding.h"
#include "runtime/core/AttentionOptions.h"
#include "runtime/core/Mods.h"
#include "runtime/core/Tensor.h"
#include "runtime/families/flash/FlashCpu.h"

namespace attnc::distributed {

// How the whole sequence is cut: queries and keys each by their own sharding over the same ranks
// (self-attention: one sharding of one length for both).
struct RingGeometry {
  Sharding q, kv;
  static RingGeometry self(int64_t length, int ranks, ShardLayout layout = ShardLayout::ZigZag) {
    return {Sharding(length, ranks, layout), Sharding(length, ranks, layout)};
  }
};

// What one rank did.
struct RingStats {
  int64_t blocks_computed = 0;  // (query segment, key segment) blocks run through the flash kernel
  int64_t blocks_skipped = 0;   // blocks the mask's classifier proved EMPTY: nothing loaded or computed
  int64_t bytes_sent = 0;       // K/V bytes this rank sent
  double compute_seconds = 0;   // local blocks and merges
  double wait_seconds = 0;      // waiting for a step's transfer after its blocks were done
};

struct RingOptions {
  FlashOptions flash;          // the local kernel's threads, ISA, mod backend (its stats are not kept)
  RingStats* stats = nullptr;  // this rank's, filled when given
};

// Moves K/V shards around the ring. One step: start() posts sending `send` to rank + 1 and
// receiving into `receive` from rank - 1 (mod ranks); progress() runs between local blocks (so a
// transport whose transfers move only inside its calls, MPI without a progress thread, moves on);
// wait() completes the step. Buffers are untouched by the caller until wait() returns.
// distributed/MpiRing.h implements it over MPI; a GPU transport (NCCL, CUDA-aware MPI) would
// implement it over device buffers (docs/distributed.md).
class RingTransport {
 public:
  virtual ~RingTransport() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  virtual void start(const void* send, size_t send_bytes, void* receive, size_t receive_bytes) = 0;
  virtual void progress() {}
  virtual void wait() = 0;
  // Whether every rank passes `ok` = true (a collective: every rank calls it at the same point).
  virtual bool all_ok(bool ok) = 0;
};

// One rank's share of the computation, whatever moves the data: attends its query shard to one K/V
// shard at a time and merges the partial results.
class RingRank {
 public:
  // q_shard (B, H, Lq, D) is `rank`'s queries as geometry.q cuts them. The options' mods must be
  // fully bound; they are seen through block_view_mod here.
  RingRank(const Tensor& q_shard, const RingGeometry& geometry, int rank, const AttentionOptions& options,
           const RingOptions& ring = {});
  ~RingRank();
  RingRank(const RingRank&) = delete;
  RingRank& operator=(const RingRank&) = delete;

  // Attends to k_shard (B, Hkv, Lkv, D) and v_shard (B, Hkv, Lkv, Dv), rank `source`'s keys as
  // geometry.kv cuts them, and merges; `between_blocks` runs after each block.
  void attend(const Tensor& k_shard, const Tensor& v_shard, int source,
              const std::function<void()>& between_blocks = {});

  // The merged output (B, H, Lq, Dv) in out_shard's dtype and strides, and the LSE (B, H, Lq) when
  // lse_shard is given (allocated fp32 when undefined).
  void finish(Tensor& out_shard, Tensor* lse_shard = nullptr) const;

  const RingStats& stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The ring on `transport`, this rank holding q_shard (B, H, Lq, D), k_shard (B, Hkv, Lkv, D) and
// v_shard (B, Hkv, Lkv, Dv) as `geometry` cuts them, into out_shard (B, H, Lq, Dv) (and lse_shard).
// Every rank calls it with the same geometry, dtypes, sizes and mods (same signatures and
// arguments; tensor arguments whole, indexed by global positions). K and V travel in their own
// dtypes, one message per step. A failure on one rank (a bad argument, an out-of-range index with
// check_bounds) does not leave the others waiting: the ring runs to its end and every rank throws
// (the failing one its own error).
void ring_attention(RingTransport& transport, const Tensor& q_shard, const Tensor& k_shard, const Tensor& v_shard,
                    Tensor& out_shard, const RingGeometry& geometry, const AttentionOptions& options = {},
                    const RingOptions& ring = {}, Tensor* lse_shard = nullptr);

// The same ring of `ranks` ranks computed in one process from whole tensors: for each rank, each
// step, exactly the blocks and merges the distributed ring computes, so the results are
// bit-identical to it. It tests the algorithm without a transport and is a module's "ring" kernel
// on one machine. q (B, H, Sq, D), k (B, Hkv, Skv, D), v (B, Hkv, Skv, Dv) -> out (B, H, Sq, Dv).
// With `stats`, one per rank is filled.
void ring_attention_local(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, int ranks,
                          const AttentionOptions& options = {}, ShardLayout layout = ShardLayout::ZigZag,
                          const FlashOptions& flash = {}, Tensor* lse = nullptr,
                          std::vector<RingStats>* stats = nullptr);

// attnax's ring_attention_reference: the result ring attention must give, computed on one machine
// from the whole sequence: standard_attention (fp64), the oracle.
void ring_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                              const AttentionOptions& options = {}, Tensor* lse = nullptr);

// The bytes of rank `source`'s K/V shard, the message of the step that forwards it: B Hkv L (D
// elements of k's dtype + Dv of v's). A rank sends P - 1 of them per call, one per step but the last.
int64_t kv_shard_bytes(const Sharding& kv, int source, int64_t batch, int64_t kv_heads, int64_t head_dim,
                       int64_t value_dim, DType k_dtype, DType v_dtype);

}  // namespace attnc::distributed
