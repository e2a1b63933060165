#include "distributed/MpiRing.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <limits>

#include <fmt/format.h>

#include "runtime/core/AttentionChecks.h"
#include "runtime/core/RuntimeError.h"

namespace attnc::distributed {

namespace {

constexpr size_t kPiece = size_t{1} << 30;  // bytes per MPI message at most
// Ring steps use tags kRingTag + step % 1024, disjoint from the scatter / gather messages.
constexpr int kRingTag = 0x1000, kScatterTag = 0x2000;

void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw RuntimeError(
      fmt::format("ring_attention: {} failed: {}", call, std::string(text, static_cast<size_t>(length))));
}

// Posts `bytes` from `data` to / into `peer` as pieces of at most kPiece bytes (one empty message
// for an empty buffer, so every send meets its receive).
void post(bool sending, void* data, size_t bytes, int peer, int tag, MPI_Comm comm,
          std::vector<MPI_Request>& requests) {
  auto* base = static_cast<unsigned char*>(data);
  size_t offset = 0;
  do {
    const size_t count = std::min(kPiece, bytes - offset);
    MPI_Request request;
    if (sending) {
      check_mpi(MPI_Isend(base + offset, static_cast<int>(count), MPI_BYTE, peer, tag, comm, &request), "MPI_Isend");
    } else {
      check_mpi(MPI_Irecv(base + offset, static_cast<int>(count), MPI_BYTE, peer, tag, comm, &request), "MPI_Irecv");
    }
    requests.push_back(request);
    offset += count;
  } while (offset < bytes);
}

void send_tensor(const Tensor& t, int peer, MPI_Comm comm) {
  std::vector<MPI_Request> requests;
  const Tensor c = contiguous_as(t, t.dtype());
  post(true, c.data(), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()), peer, kScatterTag, comm, requests);
  check_mpi(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
}

Tensor receive_tensor(DType dtype, std::vector<int64_t> shape, int peer, int tag, MPI_Comm comm) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::vector<MPI_Request> requests;
  post(false, t.data(), static_cast<size_t>(t.numel()) * dtype_size(dtype), peer, tag, comm, requests);
  check_mpi(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  return t;
}

// Whether every rank's `text` equals rank 0's; on a mismatch, the differing rank's message says how.
void require_same_everywhere(MPI_Comm comm, const std::string& text, MpiTransport& transport) {
  int length = static_cast<int>(text.size());
  check_mpi(MPI_Bcast(&length, 1, MPI_INT, 0, comm), "MPI_Bcast");
  std::string first(static_cast<size_t>(length), '\0');
  if (transport.rank() == 0) first = text;
  check_mpi(MPI_Bcast(first.data(), length, MPI_CHAR, 0, comm), "MPI_Bcast");
  const bool same = first == text;
  if (!transport.all_ok(same)) {
    if (!same) {
      throw RuntimeError(
          fmt::format("ring_attention: rank {} was called with {}, but rank 0 with {}", transport.rank(), text, first));
    }
    throw RuntimeError("ring_attention: another rank was called with other arguments than rank 0 (see its error)");
  }
}

}  // namespace

MpiTransport::MpiTransport(MPI_Comm comm) : comm_(comm) {
  check_mpi(MPI_Comm_rank(comm, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm, &ranks_), "MPI_Comm_size");
}

void MpiTransport::start(const void* send, size_t send_bytes, void* receive, size_t receive_bytes) {
  // One tag per step, so a fast rank's next message never matches a slow rank's current receive.
  const int tag = kRingTag + (step_++ % 1024);
  post(false, receive, receive_bytes, (rank_ + ranks_ - 1) % ranks_, tag, comm_, requests_);
  post(true, const_cast<void*>(send), send_bytes, (rank_ + 1) % ranks_, tag, comm_, requests_);
}

void MpiTransport::progress() {
  if (requests_.empty()) return;
  int done = 0;
  check_mpi(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
            "MPI_Testall");
}

void MpiTransport::wait() {
  check_mpi(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  requests_.clear();
}

bool MpiTransport::all_ok(bool ok) {
  int local = ok ? 1 : 0, all = 0;
  check_mpi(MPI_Allreduce(&local, &all, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
  return all == 1;
}

std::string ring_call_description(const RingGeometry& geometry, const Tensor& q_shard, const Tensor& k_shard,
                                  const Tensor& v_shard, const AttentionOptions& options) {
  auto describe = [](const Tensor& t) {
    if (!t.defined() || t.rank() != 4) return std::string("?");
    return fmt::format("{}[{}, {}, _, {}]", dtype_name(t.dtype()), t.size(0), t.size(1), t.size(3));
  };
  auto signature = [](const Mod* mod) { return mod ? mod->signature().hex() : std::string("none"); };
  return fmt::format("q {} of {} and kv {} of {} ({}), q {}, k {}, v {}, score mod {}, mask mod {}, scale {}{}",
                     shard_layout_name(geometry.q.layout()), geometry.q.length(),
                     shard_layout_name(geometry.kv.layout()), geometry.kv.length(), geometry.q.ranks(),
                     describe(q_shard), describe(k_shard), describe(v_shard), signature(options.score_mod),
                     signature(options.mask_mod),
                     options.scale ? fmt::format("{}", *options.scale) : std::string("default"),
                     options.check_bounds ? ", bounds checked" : "");
}

void ring_attention(MPI_Comm comm, const Tensor& q_shard, const Tensor& k_shard, const Tensor& v_shard,
                    Tensor& out_shard, const RingGeometry& geometry, const AttentionOptions& options,
                    const RingOptions& ring, Tensor* lse_shard) {
  MpiTransport transport(comm);
  require_same_everywhere(comm, ring_call_description(geometry, q_shard, k_shard, v_shard, options), transport);
  ring_attention(transport, q_shard, k_shard, v_shard, out_shard, geometry, options, ring, lse_shard);
}

void ring_attention_from_root(MPI_Comm comm, int root, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                              const AttentionOptions& options, ShardLayout layout, const RingOptions& ring,
                              Tensor* lse) {
  MpiTransport transport(comm);
  const int rank = transport.rank(), ranks = transport.ranks();
  if (root < 0 || root >= ranks) {
    throw RuntimeError(fmt::format("ring_attention: root {} is not a rank of a ring of {}", root, ranks));
  }
  // Root checks the whole call and says the sizes: B, H, Sq, D, Hkv, Skv, Dv and the three dtypes.
  std::array<int64_t, 10> header{};
  std::exception_ptr failure;
  if (rank == root) {
    try {
      const AttentionShape s = check_attention_args("ring_attention", q, k, v, out, options, lse);
      header = {s.batch,
                s.heads,
                s.q_len,
                s.head_dim,
                s.kv_heads,
                s.kv_len,
                s.value_dim,
                static_cast<int64_t>(q.dtype()),
                static_cast<int64_t>(k.dtype()),
                static_cast<int64_t>(v.dtype())};
    } catch (...) {
      failure = std::current_exception();
    }
  }
  int root_ok = failure ? 0 : 1;
  check_mpi(MPI_Bcast(&root_ok, 1, MPI_INT, root, comm), "MPI_Bcast");
  if (!root_ok) {
    if (failure) std::rethrow_exception(failure);
    throw RuntimeError(fmt::format("ring_attention: rank {} (the root) refused the tensors (see its error)", root));
  }
  check_mpi(MPI_Bcast(header.data(), static_cast<int>(header.size()), MPI_INT64_T, root, comm), "MPI_Bcast");
  const auto [B, H, Sq, D, Hkv, Skv, Dv, q_dtype, k_dtype, v_dtype] = header;
  const RingGeometry geometry{Sharding(Sq, ranks, layout), Sharding(Skv, ranks, layout)};

  // The shards: extracted by root and sent, received by the others.
  Tensor q_shard, k_shard, v_shard;
  if (rank == root) {
    for (int r = 0; r < ranks; ++r) {
      if (r == root) continue;
      send_tensor(geometry.q.extract(q, r, 2), r, comm);
      send_tensor(geometry.kv.extract(k, r, 2), r, comm);
      send_tensor(geometry.kv.extract(v, r, 2), r, comm);
    }
    q_shard = geometry.q.extract(q, rank, 2);
    k_shard = geometry.kv.extract(k, rank, 2);
    v_shard = geometry.kv.extract(v, rank, 2);
  } else {
    q_shard =
        receive_tensor(static_cast<DType>(q_dtype), {B, H, geometry.q.shard_length(rank), D}, root, kScatterTag, comm);
    k_shard = receive_tensor(static_cast<DType>(k_dtype), {B, Hkv, geometry.kv.shard_length(rank), D}, root,
                             kScatterTag, comm);
    v_shard = receive_tensor(static_cast<DType>(v_dtype), {B, Hkv, geometry.kv.shard_length(rank), Dv}, root,
                             kScatterTag, comm);
  }

  Tensor out_shard = Tensor::empty(DType::F32, {B, H, geometry.q.shard_length(rank), Dv});
  Tensor lse_shard;
  // Whether root wants the LSE decides for everyone.
  int want_lse = rank == root && lse != nullptr ? 1 : 0;
  check_mpi(MPI_Bcast(&want_lse, 1, MPI_INT, root, comm), "MPI_Bcast");
  ring_attention(comm, q_shard, k_shard, v_shard, out_shard, geometry, options, ring, want_lse ? &lse_shard : nullptr);

  // Gather: every rank's output (and LSE) to root, placed into its positions.
  if (rank != root) {
    send_tensor(out_shard, root, comm);
    if (want_lse) send_tensor(lse_shard, root, comm);
    return;
  }
  for (int r = 0; r < ranks; ++r) {
    const int64_t length = geometry.q.shard_length(r);
    const Tensor shard = r == root ? out_shard : receive_tensor(DType::F32, {B, H, length, Dv}, r, kScatterTag, comm);
    geometry.q.place(shard, r, out, 2);
    if (want_lse) {
      const Tensor lse_part = r == root ? lse_shard : receive_tensor(DType::F32, {B, H, length}, r, kScatterTag, comm);
      geometry.q.place(lse_part, r, *lse, 2);
    }
  }
}

}  // namespace attnc::distributed
