// Writing new tokens into KV caches (runtime/families/decode/KvAppend.h): the CPU copy, the CUDA
// kernel (kv_append.cuh) run under the host emulation and compiled with NVRTC, and the checks that
// keep every write inside the cache.

#include "runtime/families/decode/KvAppend.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <vector>

#include "runtime/cache/KernelCache.h"
#include "runtime/core/RuntimeError.h"
#include "runtime/cuda/CompileThroughCache.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/families/decode/kv_append.cuh"
#include "tests/support/CudaTesting.h"
#include "tests/support/TestTensors.h"

using namespace attnc;
using namespace attnc::decode;
namespace emu = attnc::host_emulation;

namespace {

// A paged destination: 6 pages of 16 tokens, 2 KV heads, head dim 24 (K) and 40 (V), NaN-filled; the
// block table gives sequence 0 pages {4, 1} and sequence 1 pages {0, 5, 2}.
struct Paged {
  KvSource dst;
  std::vector<int32_t> table = {4, 1, -1, 0, 5, 2};
  Paged(DType dtype) {
    dst.k = Tensor::empty(dtype, {6, 2, 16, 24});
    dst.v = Tensor::empty(dtype, {6, 2, 16, 40});
    std::memset(dst.k.data(), 0xFF, static_cast<size_t>(dst.k.numel()) * dtype_size(dtype));
    std::memset(dst.v.data(), 0xFF, static_cast<size_t>(dst.v.numel()) * dtype_size(dtype));
    dst.block_table = Tensor::from_data(table.data(), DType::I32, {2, 3});
    dst.page_size = 16;
  }
  float k_at(int seq, int g, int pos, int d) const {
    return dst.k.get_float({table[static_cast<size_t>(seq * 3 + pos / 16)], g, pos % 16, d});
  }
  float v_at(int seq, int g, int pos, int d) const {
    return dst.v.get_float({table[static_cast<size_t>(seq * 3 + pos / 16)], g, pos % 16, d});
  }
};

// Runs the CUDA append kernel under the emulation with host pointers.
void emulated_append(const KvSource& dst, const Tensor& k, const Tensor& v, std::vector<KvAppendRow> rows) {
  const auto bytes = [](const Tensor& t, size_t d) {
    return t.stride(d) * static_cast<int64_t>(dtype_size(t.dtype()));
  };
  attnc_append::AppendParams p{};
  p.k_src = static_cast<const unsigned char*>(k.data());
  p.v_src = static_cast<const unsigned char*>(v.data());
  p.k_src_batch_stride = bytes(k, 0), p.k_src_head_stride = bytes(k, 1), p.k_src_row_stride = bytes(k, 2);
  p.v_src_batch_stride = bytes(v, 0), p.v_src_head_stride = bytes(v, 1), p.v_src_row_stride = bytes(v, 2);
  p.k_dst = static_cast<unsigned char*>(dst.k.data());
  p.v_dst = static_cast<unsigned char*>(dst.v.data());
  p.k_dst_page_stride = bytes(dst.k, 0), p.k_dst_head_stride = bytes(dst.k, 1), p.k_dst_row_stride = bytes(dst.k, 2);
  p.v_dst_page_stride = bytes(dst.v, 0), p.v_dst_head_stride = bytes(dst.v, 1), p.v_dst_row_stride = bytes(dst.v, 2);
  if (dst.paged()) {
    p.block_table = static_cast<const int32_t*>(dst.block_table.data());
    p.block_table_stride = dst.block_table.stride(0);
    while ((1 << p.page_shift) < dst.page_size) ++p.page_shift;
  }
  p.rows = reinterpret_cast<const attnc_append::AppendRow*>(rows.data());
  p.k_chunks = static_cast<int32_t>(k.size(3) * static_cast<int64_t>(dtype_size(k.dtype())) / 16);
  p.v_chunks = static_cast<int32_t>(v.size(3) * static_cast<int64_t>(dtype_size(v.dtype())) / 16);
  int most = 0;
  for (const KvAppendRow& r : rows) most = std::max(most, r.count);
  emu::launch({static_cast<uint32_t>(most), static_cast<uint32_t>(k.size(1)), static_cast<uint32_t>(rows.size())},
              {32, 1, 1}, 0, [&p] { attnc_append::append(p); });
}

}  // namespace

TEST_CASE("appending writes each row's tokens at its positions through the block table, nothing else",
          "[runtime][decode][cache]") {
  for (bool emulated : {false, true}) {
    CAPTURE(emulated);
    Paged cache(DType::BF16);
    const Tensor k = test::normal_tensor(1, DType::BF16, {2, 2, 20, 24});
    const Tensor v = test::normal_tensor(2, DType::BF16, {2, 2, 20, 40});
    // Sequence 1 gets 19 tokens from position 12 (pages 0, 5: crossing a page), sequence 0 gets 3 at 29.
    const std::vector<KvAppendRow> rows = {{1, 12, 19}, {0, 29, 3}};
    if (emulated) {
      emulated_append(cache.dst, k, v, rows);
    } else {
      append_kv(cache.dst, k, v, rows);
    }
    for (int g = 0; g < 2; ++g) {
      for (int t = 0; t < 19; ++t) {
        CHECK(cache.k_at(1, g, 12 + t, 7) == k.get_float({0, g, t, 7}));
        CHECK(cache.v_at(1, g, 12 + t, 39) == v.get_float({0, g, t, 39}));
      }
      for (int t = 0; t < 3; ++t) CHECK(cache.k_at(0, g, 29 + t, 23) == k.get_float({1, g, t, 23}));
    }
    // Positions nobody wrote are still NaN: before the appends, and every unused page.
    CHECK(std::isnan(cache.k_at(1, 0, 11, 0)));
    CHECK(std::isnan(cache.k_at(1, 1, 31, 0)));
    CHECK(std::isnan(cache.k_at(0, 0, 28, 5)));
    for (float x : std::vector<float>{cache.dst.k.get_float({3, 0, 0, 0}), cache.dst.v.get_float({3, 1, 15, 39})}) {
      CHECK(std::isnan(x));
    }
  }
}

TEST_CASE("appending to a contiguous cache, from strided new tokens", "[runtime][decode][cache]") {
  KvSource dst;
  dst.k = Tensor::zeros(DType::F32, {3, 1, 10, 8});
  dst.v = Tensor::zeros(DType::F32, {3, 1, 10, 8});
  // New tokens as a transposed view (T, Hkv swapped in memory).
  const Tensor base = test::normal_tensor(3, DType::F32, {3, 4, 1, 8});
  const Tensor k = Tensor::from_data(base.data(), DType::F32, {3, 1, 4, 8}, {32, 8, 8, 1});
  append_kv(dst, k, k, std::vector<KvAppendRow>{{2, 6, 4}, {0, 0, 1}, {1, 9, 0}});
  CHECK(dst.k.get_float({2, 0, 6, 3}) == k.get_float({0, 0, 0, 3}));
  CHECK(dst.k.get_float({2, 0, 9, 7}) == k.get_float({0, 0, 3, 7}));
  CHECK(dst.k.get_float({0, 0, 0, 0}) == k.get_float({1, 0, 0, 0}));
  CHECK(dst.k.get_float({0, 0, 1, 0}) == 0.0f);
  CHECK(dst.k.get_float({1, 0, 9, 0}) == 0.0f);
}

TEST_CASE("appends that would leave the cache are refused before anything is written", "[runtime][decode][cache]") {
  Paged cache(DType::BF16);
  const Tensor k = test::normal_tensor(1, DType::BF16, {1, 2, 20, 24});
  const Tensor v = test::normal_tensor(2, DType::BF16, {1, 2, 20, 40});
  auto append = [&](KvAppendRow row, const Tensor& kk, const Tensor& vv) {
    append_kv(cache.dst, kk, vv, std::vector<KvAppendRow>{row});
  };
  CHECK_THROWS_WITH(append({0, 30, 3}, k, v),
                    Catch::Contains("block table row 0 entry 2 is page -1, outside the pool"));
  CHECK_THROWS_WITH(append({1, 40, 9}, k, v), Catch::Contains("past the 3 pages of a block-table row"));
  CHECK_THROWS_WITH(append({0, 0, 21}, k, v), Catch::Contains("row 0 appends 21 tokens"));
  CHECK_THROWS_WITH(append({0, 0, -1}, k, v), Catch::Contains("row 0 appends -1 tokens"));
  CHECK_THROWS_WITH(append({0, -2, 1}, k, v), Catch::Contains("negative position -2"));
  CHECK_THROWS_WITH(append({2, 0, 1}, k, v), Catch::Contains("row 0 writes KV row 2, outside the 2"));
  CHECK_THROWS_WITH(append({0, 0, 1}, test::normal_tensor(1, DType::F16, {1, 2, 20, 24}), v),
                    Catch::Contains("must have the cache's dtype and device (bf16 on cpu)"));
  CHECK_THROWS_WITH(append({0, 0, 1}, test::normal_tensor(1, DType::BF16, {1, 2, 20, 32}), v),
                    Catch::Contains("must be (1, 2, T, 24)"));
  cache.table[4] = 6;  // sequence 1's second page outside the pool of 6
  CHECK_THROWS_WITH(append({1, 10, 10}, k, v),
                    Catch::Contains("block table row 1 entry 1 is page 6, outside the pool"));
  // Nothing was written by any refused call.
  for (float x : cache.dst.k.to_float_vector()) CHECK(std::isnan(x));
}

TEST_CASE("the append kernel compiles through the cache once per architecture", "[cuda][decode][cache]") {
  if (!test::nvrtc_or_warn()) return;
  KernelCacheOptions memory;
  memory.use_disk = false;
  KernelCache cache(memory);
  cuda::NvrtcOptions options;
  options.arch = "sm_80";
  const cuda::CudaBinary first =
      cuda::compile_through_cache(cache, kv_append_key("sm_80"), kAppendEntry, kv_append_program, options);
  const cuda::CudaBinary second =
      cuda::compile_through_cache(cache, kv_append_key("sm_80"), kAppendEntry, kv_append_program, options);
  CHECK(first.source == CacheSource::Compiled);
  CHECK(second.source == CacheSource::Memory);
  CHECK(first.key.family == "kv_append");
  CHECK(first.kernel->payload.substr(1, 3) == "ELF");
  CHECK(kv_append_key("sm_80") != kv_append_key("sm_90"));
}
