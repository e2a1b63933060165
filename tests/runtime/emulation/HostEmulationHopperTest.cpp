// The sm_90a instructions of the host emulation (runtime/emulation/HostEmulationHopper.cpp, through
// the device wrappers of runtime/kernels/hopper_primitives.cuh), each against plain arithmetic:
// tensor-map loads against the 128-byte swizzle written out by hand, wgmma against a matrix
// product (with its operands placed by tensor-map loads, the way the Hopper template places
// them, so the two layouts are checked against each other and against the fragment layout), bulk
// stores, mbarrier phases, named barriers, and the misuse the emulation reports.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "dsl/Errors.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/kernels/hopper_primitives.cuh"

namespace emu = attnc::host_emulation;
using attnc_dev::bf16_t;
using attnc_dev::f16_t;
using attnc_dev::TensorMap;

namespace {

constexpr float kBf16Tolerance = 1e-4f;  // relative, of sums of exact products rounded once

std::vector<uint16_t> random_bits(std::mt19937& rng, size_t count, bool bf16) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint16_t> out(count);
  for (uint16_t& v : out) v = bf16 ? attnc::float_to_bfloat16(dist(rng)) : attnc::float_to_half(dist(rng));
  return out;
}

float to_float(uint16_t bits, bool bf16) { return bf16 ? attnc::bfloat16_to_float(bits) : attnc::half_to_float(bits); }

// The byte offset of element (row, col) of a tile of 64-column sub-tiles with 128-byte rows and the
// 128-byte swizzle, written out from the description (PTX ISA, tensor-map swizzle modes): sub-tile
// col / 64 after `rows` rows of each earlier one; in it, row r at 128 r, 16-byte chunk c at c ^ (r % 8).
size_t sw128_offset(int row, int col, int rows) {
  const int sub = col / 64, c = col % 64;
  return size_t(sub) * rows * 128 + size_t(row) * 128 + size_t(((c / 8) ^ (row % 8)) * 16) + size_t(c % 8) * 2;
}

// A 4-D map (cols, rows, 1, 1) over a row-major matrix with `row_stride` elements per row, box
// (64, box_rows), 128-byte swizzle.
void encode_matrix_map(TensorMap& map, const void* data, int rows, int cols, int row_stride, int box_rows) {
  const uint64_t dims[4] = {uint64_t(cols), uint64_t(rows), 1, 1};
  const uint64_t strides[3] = {uint64_t(row_stride) * 2, uint64_t(rows) * row_stride * 2,
                               uint64_t(rows) * row_stride * 2};
  const uint32_t box[4] = {64, uint32_t(box_rows), 1, 1};
  emu::encode_tensor_map(&map, data, 2, 4, dims, strides, box, emu::TensorMapSwizzle::B128);
}

// Loads a rows x cols matrix (cols a multiple of 64) into `smem` as 64-column sub-tiles, each one
// TMA box of `rows` rows, completing on `bar`; returns after the barrier's phase 0 completed.
void load_tile(unsigned char* smem, const TensorMap& map, int rows, int cols, int row0, uint64_t* bar) {
  if (attnc_dev::thread_idx_x() == 0) {
    attnc_dev::mbarrier_arrive_expect_tx(bar, uint32_t(rows * cols * 2));
    for (int sub = 0; sub < cols / 64; ++sub) {
      attnc_dev::tma_load_4d(smem + size_t(sub) * rows * 128, &map, sub * 64, row0, 0, 0, bar);
    }
  }
  attnc_dev::mbarrier_wait(bar, 0);
}

// The (row, column) of accumulator element i of thread `thread` of a warpgroup, from the PTX ISA's
// figure for wgmma .m64nNk16 D fragments: warp w owns rows 16w..16w+15; lane 4g+t holds rows g and
// g+8, columns 2t and 2t+1 of each 8-column block j, as d[4j], d[4j+1] (row g) and d[4j+2], d[4j+3].
void accumulator_position(int thread, int i, int& row, int& col) {
  const int w = thread / 32, g = (thread % 32) / 4, t = thread % 4;
  const int j = i / 4, e = i % 4;
  row = 16 * w + g + (e >= 2 ? 8 : 0);
  col = 8 * j + 2 * t + (e & 1);
}

// D = A (64 x K, K-major in shared memory, loaded by TMA) * B^T (B: n x K, K-major) for every k16
// step, as the template's S = Q K^T.
template <class Elem, int N>
void check_ss_k_major(int k_dim) {
  constexpr bool kBf16 = std::is_same_v<Elem, bf16_t>;
  CAPTURE(N, k_dim, kBf16);
  std::mt19937 rng(N * 31 + k_dim);
  const std::vector<uint16_t> a = random_bits(rng, size_t(64) * k_dim, kBf16);
  const std::vector<uint16_t> b = random_bits(rng, size_t(N) * k_dim, kBf16);
  alignas(64) TensorMap map_a, map_b;
  encode_matrix_map(map_a, a.data(), 64, k_dim, k_dim, 64);
  encode_matrix_map(map_b, b.data(), N, k_dim, k_dim, N);
  std::vector<float> d(size_t(64) * N, NAN);
  const size_t a_bytes = size_t(64) * k_dim * 2, b_bytes = size_t(N) * k_dim * 2;
  const size_t b_offset = (a_bytes + 1023) / 1024 * 1024;
  const size_t bar_offset = (b_offset + b_bytes + 1023) / 1024 * 1024;
  const emu::LaunchStats stats = emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{128, 1, 1}, bar_offset + 64, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    auto* bars = reinterpret_cast<uint64_t*>(smem + bar_offset);
    const int tid = attnc_dev::thread_idx_x();
    if (tid == 0) {
      attnc_dev::mbarrier_init(&bars[0], 1);
      attnc_dev::mbarrier_init(&bars[1], 1);
    }
    attnc_dev::block_barrier();
    load_tile(smem, map_a, 64, k_dim, 0, &bars[0]);
    load_tile(smem + b_offset, map_b, N, k_dim, 0, &bars[1]);
    float acc[N / 2];
    for (float& x : acc) x = 123.0f;  // overwritten: the first step does not accumulate
    attnc_dev::wgmma_fence();
    for (int kk = 0; kk < k_dim / 16; ++kk) {
      const uint32_t step = uint32_t((kk / 4) * 64 * 128 + (kk % 4) * 32);
      const uint64_t da =
          attnc_dev::make_smem_descriptor(attnc_dev::smem_address(smem) + step, 16, 1024, attnc_dev::kSwizzle128B);
      const uint64_t db = attnc_dev::make_smem_descriptor(
          attnc_dev::smem_address(smem + b_offset) + uint32_t((kk / 4) * N * 128 + (kk % 4) * 32), 16, 1024,
          attnc_dev::kSwizzle128B);
      attnc_dev::wgmma_ss<Elem, N, 0, 0>(acc, da, db, kk > 0);
    }
    attnc_dev::wgmma_commit();
    attnc_dev::wgmma_wait<0>();
    for (int i = 0; i < N / 2; ++i) {
      int row, col;
      accumulator_position(tid, i, row, col);
      d[size_t(row) * N + col] = acc[i];
    }
  });
  CHECK(stats.wgmma_ops == uint64_t(k_dim / 16));
  CHECK(stats.tma_load_bytes == a_bytes + b_bytes);
  int wrong = 0;
  for (int m = 0; m < 64; ++m) {
    for (int n = 0; n < N; ++n) {
      double sum = 0;
      for (int k = 0; k < k_dim; ++k) {
        sum += double(to_float(a[size_t(m) * k_dim + k], kBf16)) * to_float(b[size_t(n) * k_dim + k], kBf16);
      }
      const float got = d[size_t(m) * N + n];
      if (!(std::fabs(got - sum) <= kBf16Tolerance * (1 + std::fabs(sum))) && wrong++ < 3) {
        UNSCOPED_INFO("D[" << m << "][" << n << "] = " << got << ", expected " << sum);
      }
    }
  }
  CHECK(wrong == 0);
}

// D = P (64 x K from registers, in the accumulator layout) * V (K x n, n-major in shared memory:
// rows of V along K, loaded by TMA, imm-trans-b = 1), as the template's O += P V.
template <class Elem, int N>
void check_rs_n_major(int k_dim) {
  constexpr bool kBf16 = std::is_same_v<Elem, bf16_t>;
  CAPTURE(N, k_dim, kBf16);
  std::mt19937 rng(N * 17 + k_dim);
  const std::vector<uint16_t> p = random_bits(rng, size_t(64) * k_dim, kBf16);
  const std::vector<uint16_t> v = random_bits(rng, size_t(k_dim) * N, kBf16);
  alignas(64) TensorMap map_v;
  encode_matrix_map(map_v, v.data(), k_dim, N, N, k_dim);
  std::vector<float> d(size_t(64) * N, NAN);
  const size_t v_bytes = size_t(k_dim) * N * 2;
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{128, 1, 1}, v_bytes + 64, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    auto* bar = reinterpret_cast<uint64_t*>(smem + v_bytes);
    const int tid = attnc_dev::thread_idx_x();
    if (tid == 0) attnc_dev::mbarrier_init(bar, 1);
    attnc_dev::block_barrier();
    load_tile(smem, map_v, k_dim, N, 0, bar);
    float acc[N / 2];
    for (float& x : acc) x = 0.5f;  // accumulated into
    attnc_dev::wgmma_fence();
    uint32_t a[4];
    for (int kk = 0; kk < k_dim / 16; ++kk) {
      // The A fragment of k step kk, placed by the accumulator layout of a 64 x 16 tile: register r
      // holds elements 2r and 2r + 1.
      for (int r = 0; r < 4; ++r) {
        int row0, col0, row1, col1;
        accumulator_position(tid, 2 * r, row0, col0);
        accumulator_position(tid, 2 * r + 1, row1, col1);
        a[r] = uint32_t(p[size_t(row0) * k_dim + kk * 16 + col0]) |
               (uint32_t(p[size_t(row1) * k_dim + kk * 16 + col1]) << 16);
      }
      const uint64_t db = attnc_dev::make_smem_descriptor(attnc_dev::smem_address(smem) + uint32_t(kk * 16 * 128),
                                                          uint32_t(k_dim * 128), 1024, attnc_dev::kSwizzle128B);
      attnc_dev::wgmma_rs<Elem, N, 1>(acc, a, db, true);
    }
    attnc_dev::wgmma_commit();
    attnc_dev::wgmma_wait<0>();
    for (int i = 0; i < N / 2; ++i) {
      int row, col;
      accumulator_position(tid, i, row, col);
      d[size_t(row) * N + col] = acc[i];
    }
  });
  int wrong = 0;
  for (int m = 0; m < 64; ++m) {
    for (int n = 0; n < N; ++n) {
      double sum = 0.5;
      for (int k = 0; k < k_dim; ++k) {
        sum += double(to_float(p[size_t(m) * k_dim + k], kBf16)) * to_float(v[size_t(k) * N + n], kBf16);
      }
      const float got = d[size_t(m) * N + n];
      if (!(std::fabs(got - sum) <= kBf16Tolerance * (1 + std::fabs(sum))) && wrong++ < 3) {
        UNSCOPED_INFO("D[" << m << "][" << n << "] = " << got << ", expected " << sum);
      }
    }
  }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("a tensor-map load places a box with the 128-byte swizzle and zero-fills outside the tensor",
          "[emulation][hopper]") {
  // A 70 x 128 bf16 matrix with a row stride of 136 elements; load rows 64..79 (6 inside) of both
  // 64-column halves.
  std::mt19937 rng(5);
  const int rows = 70, cols = 128, stride = 136;
  std::vector<uint16_t> data = random_bits(rng, size_t(rows) * stride, true);
  alignas(64) TensorMap map;
  encode_matrix_map(map, data.data(), rows, cols, stride, 16);
  std::vector<unsigned char> smem_copy(4096);
  std::vector<unsigned char> before_wait(4096);
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{32, 1, 1}, 4096 + 64, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    auto* bar = reinterpret_cast<uint64_t*>(smem + 4096);
    if (attnc_dev::thread_idx_x() == 0) {
      attnc_dev::mbarrier_init(bar, 1);
      attnc_dev::mbarrier_arrive_expect_tx(bar, 2 * 16 * 128);
      attnc_dev::tma_load_4d(smem, &map, 0, 64, 0, 0, bar);
      attnc_dev::tma_load_4d(smem + 2048, &map, 64, 64, 0, 0, bar);
      std::memcpy(before_wait.data(), smem, 4096);  // nothing has landed before the wait
      attnc_dev::mbarrier_wait(bar, 0);
      std::memcpy(smem_copy.data(), smem, 4096);
    }
  });
  CHECK(before_wait == std::vector<unsigned char>(4096, 0xFF));
  int wrong = 0;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < cols; ++c) {
      uint16_t got;
      std::memcpy(&got, smem_copy.data() + sw128_offset(r, c, 16), 2);
      const uint16_t expected = 64 + r < rows ? data[size_t(64 + r) * stride + c] : uint16_t(0);
      if (got != expected && wrong++ < 3) UNSCOPED_INFO("row " << r << " col " << c);
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("wgmma with both operands K-major in shared memory is a matrix product", "[emulation][hopper]") {
  check_ss_k_major<bf16_t, 64>(64);
  check_ss_k_major<bf16_t, 128>(128);
  check_ss_k_major<f16_t, 80>(256);
  check_ss_k_major<bf16_t, 16>(64);
  check_ss_k_major<f16_t, 256>(64);
}

TEST_CASE("wgmma with A from registers and B N-major in shared memory is a matrix product", "[emulation][hopper]") {
  check_rs_n_major<bf16_t, 64>(128);
  check_rs_n_major<f16_t, 128>(80);
  check_rs_n_major<bf16_t, 256>(32);
}

TEST_CASE("wgmma accumulators hold poison until the wait that retires their group", "[emulation][hopper]") {
  // Two groups on two accumulators: after wait<1> the first is readable and the second not yet.
  std::vector<uint16_t> ones(64 * 64, attnc::float_to_bfloat16(1.0f));
  alignas(64) TensorMap map;
  encode_matrix_map(map, ones.data(), 64, 64, 64, 64);
  std::vector<int> first_ok(128), second_nan(128), second_ok(128);
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{128, 1, 1}, 8192 + 64, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    auto* bar = reinterpret_cast<uint64_t*>(smem + 8192);
    const int tid = attnc_dev::thread_idx_x();
    if (tid == 0) attnc_dev::mbarrier_init(bar, 1);
    attnc_dev::block_barrier();
    load_tile(smem, map, 64, 64, 0, bar);
    const uint64_t desc = attnc_dev::make_smem_descriptor(attnc_dev::smem_address(smem), 16, 1024, 1);
    float x[32], y[32];
    attnc_dev::wgmma_fence();
    attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(x, desc, desc, false);
    attnc_dev::wgmma_commit();
    attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(y, desc, desc, false);
    attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(y, desc + 2, desc + 2, true);  // chained: k 16..31 on top
    attnc_dev::wgmma_commit();
    attnc_dev::wgmma_wait<1>();
    first_ok[tid] = x[0] == 16.0f && x[31] == 16.0f;
    second_nan[tid] = std::isnan(y[0]) && std::isnan(y[31]);
    attnc_dev::wgmma_wait<0>();
    second_ok[tid] = y[0] == 32.0f && y[31] == 32.0f;
  });
  CHECK(first_ok == std::vector<int>(128, 1));
  CHECK(second_nan == std::vector<int>(128, 1));
  CHECK(second_ok == std::vector<int>(128, 1));
}

TEST_CASE("a tensor-map store writes a swizzled box back and clips it at the tensor's edge", "[emulation][hopper]") {
  const int rows = 50, cols = 128;
  std::vector<uint16_t> out(size_t(rows) * cols, 0xABCD);
  alignas(64) TensorMap map;
  encode_matrix_map(map, out.data(), rows, cols, cols, 64);
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{128, 1, 1}, 2 * 8192, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    const int tid = attnc_dev::thread_idx_x();
    for (int e = tid; e < 64 * cols; e += 128) {
      const int r = e / cols, c = e % cols;
      const uint16_t value = uint16_t(r * 256 + c);
      std::memcpy(smem + sw128_offset(r, c, 64), &value, 2);
    }
    attnc_dev::fence_proxy_async_shared();
    attnc_dev::block_barrier();
    if (tid == 0) {
      attnc_dev::tma_store_4d(&map, 0, 0, 0, 0, smem);
      attnc_dev::tma_store_4d(&map, 64, 0, 0, 0, smem + 8192);
      attnc_dev::bulk_commit_group();
      attnc_dev::bulk_wait_group_read<0>();
    }
  });
  int wrong = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) wrong += out[size_t(r) * cols + c] != uint16_t(r * 256 + c);
  }
  CHECK(wrong == 0);
}

TEST_CASE("mbarrier phases carry a producer-consumer ring through several rounds", "[emulation][hopper]") {
  // One producer thread fills a two-stage ring from a 6 x 64 bf16 matrix; a warpgroup of consumers
  // sums each row it receives and releases the stage. Parities alternate per round.
  const int tiles = 6;
  std::vector<uint16_t> data(size_t(tiles) * 64 * 8);
  for (size_t i = 0; i < data.size(); ++i) data[i] = attnc::float_to_bfloat16(float(i % 7));
  alignas(64) TensorMap map;
  encode_matrix_map(map, data.data(), tiles * 8, 64, 64, 8);
  std::vector<float> sums(tiles, 0.0f);
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{160, 1, 1}, 2048 + 64, [&] {
    unsigned char* smem = attnc_dev::dynamic_shared_memory();
    auto* full = reinterpret_cast<uint64_t*>(smem + 2048);
    uint64_t* empty = full + 2;
    const int tid = attnc_dev::thread_idx_x();
    if (tid == 0) {
      for (int s = 0; s < 2; ++s) {
        attnc_dev::mbarrier_init(&full[s], 1);
        attnc_dev::mbarrier_init(&empty[s], 128);
      }
    }
    attnc_dev::block_barrier();
    if (tid == 128) {  // the producer (the fifth warp)
      for (int i = 0; i < tiles; ++i) {
        const int s = i % 2;
        attnc_dev::mbarrier_wait(&empty[s], ((i / 2) & 1) ^ 1);
        attnc_dev::mbarrier_arrive_expect_tx(&full[s], 8 * 128);
        attnc_dev::tma_load_4d(smem + s * 1024, &map, 0, i * 8, 0, 0, &full[s]);
      }
    } else if (tid < 128) {
      for (int i = 0; i < tiles; ++i) {
        const int s = i % 2;
        attnc_dev::mbarrier_wait(&full[s], (i / 2) & 1);
        if (tid == 0) {
          float sum = 0;
          for (int r = 0; r < 8; ++r) {
            for (int c = 0; c < 64; ++c) {
              uint16_t bits;
              std::memcpy(&bits, smem + s * 1024 + sw128_offset(r, c, 8), 2);
              sum += attnc::bfloat16_to_float(bits);
            }
          }
          sums[i] = sum;
        }
        attnc_dev::mbarrier_arrive(&empty[s]);
      }
    }
  });
  for (int i = 0; i < tiles; ++i) {
    float expected = 0;
    for (int e = 0; e < 8 * 64; ++e) expected += float((size_t(i) * 512 + e) % 7);
    CHECK(sums[i] == expected);
  }
}

TEST_CASE("named barriers order two warpgroups in turns", "[emulation][hopper]") {
  // The ping-pong handshake of the Hopper template: each warpgroup syncs on its own barrier before
  // its turn and arrives on the other's after it; warpgroup 0 starts by arriving on its own.
  std::vector<int> order;
  emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{256, 1, 1}, 64, [&] {
    const int wg = attnc_dev::thread_idx_x() / 128;
    const bool leader = attnc_dev::thread_idx_x() % 128 == 0;
    const int turns = 4;
    if (wg == 0) attnc_dev::named_barrier_arrive(1, 256);
    for (int i = 0; i < turns; ++i) {
      attnc_dev::named_barrier_sync(1 + wg, 256);
      if (leader) order.push_back(wg);
      if (wg == 0 || i + 1 < turns) attnc_dev::named_barrier_arrive(2 - wg, 256);
    }
  });
  CHECK(order == std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1});
}

TEST_CASE("the emulation reports misuse of the Hopper instructions", "[emulation][hopper]") {
  auto launch_128 = [](const std::function<void()>& kernel) {
    emu::launch(emu::Dim3{1, 1, 1}, emu::Dim3{128, 1, 1}, 8192 + 64, kernel);
  };
  std::vector<uint16_t> ones(64 * 64, attnc::float_to_bfloat16(1.0f));
  alignas(64) TensorMap map;
  encode_matrix_map(map, ones.data(), 64, 64, 64, 64);
  auto loaded = [&](unsigned char* smem) {
    auto* bar = reinterpret_cast<uint64_t*>(smem + 8192);
    if (attnc_dev::thread_idx_x() == 0) attnc_dev::mbarrier_init(bar, 1);
    attnc_dev::block_barrier();
    load_tile(smem, map, 64, 64, 0, bar);
    return attnc_dev::make_smem_descriptor(attnc_dev::smem_address(smem), 16, 1024, 1);
  };
  SECTION("a wgmma without a fence") {
    CHECK_THROWS_WITH(launch_128([&] {
                        const uint64_t desc = loaded(attnc_dev::dynamic_shared_memory());
                        float acc[32] = {};
                        attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(acc, desc, desc, false);
                      }),
                      Catch::Contains("without a wgmma.fence"));
  }
  SECTION("writing in-flight accumulators") {
    CHECK_THROWS_WITH(launch_128([&] {
                        const uint64_t desc = loaded(attnc_dev::dynamic_shared_memory());
                        float acc[32] = {};
                        attnc_dev::wgmma_fence();
                        attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(acc, desc, desc, false);
                        acc[3] = 1.0f;
                        attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(acc, desc, desc, true);
                        attnc_dev::wgmma_commit();
                        attnc_dev::wgmma_wait<0>();
                      }),
                      Catch::Contains("written before wgmma.wait_group"));
  }
  SECTION("a wgmma never waited for") {
    CHECK_THROWS_WITH(launch_128([&] {
                        const uint64_t desc = loaded(attnc_dev::dynamic_shared_memory());
                        float acc[32] = {};
                        attnc_dev::wgmma_fence();
                        attnc_dev::wgmma_ss<bf16_t, 64, 0, 0>(acc, desc, desc, false);
                        attnc_dev::wgmma_commit();
                      }),
                      Catch::Contains("no wgmma.wait_group retired"));
  }
  SECTION("warps of a warpgroup at different instructions") {
    CHECK_THROWS_WITH(launch_128([&] {
                        if (attnc_dev::thread_idx_x() < 64) {
                          attnc_dev::wgmma_fence();
                        } else {
                          attnc_dev::wgmma_commit();
                        }
                      }),
                      Catch::Contains("reached different instructions"));
  }
  SECTION("setmaxnreg out of range") {
    CHECK_THROWS_WITH(launch_128([] { attnc_dev::setmaxnreg_inc<250>(); }), Catch::Contains("multiple of 8"));
  }
  SECTION("a named barrier left with arrivals") {
    CHECK_THROWS_WITH(launch_128([] {
                        if (attnc_dev::thread_idx_x() < 32) attnc_dev::named_barrier_arrive(3, 128);
                      }),
                      Catch::Contains("named barrier 3 ended the block"));
  }
  SECTION("waiting for bytes that never come") {
    CHECK_THROWS_WITH(launch_128([] {
                        auto* bar = reinterpret_cast<uint64_t*>(attnc_dev::dynamic_shared_memory() + 8192);
                        if (attnc_dev::thread_idx_x() == 0) {
                          attnc_dev::mbarrier_init(bar, 1);
                          attnc_dev::mbarrier_arrive_expect_tx(bar, 128);
                        }
                        attnc_dev::block_barrier();
                        attnc_dev::mbarrier_wait(bar, 0);
                      }),
                      Catch::Contains("never reach"));
  }
  SECTION("exiting before a bulk store has read shared memory") {
    CHECK_THROWS_WITH(launch_128([&] {
                        if (attnc_dev::thread_idx_x() == 0) {
                          attnc_dev::tma_store_4d(&map, 0, 0, 0, 0, attnc_dev::dynamic_shared_memory());
                          attnc_dev::bulk_commit_group();
                        }
                      }),
                      Catch::Contains("wait_group.read"));
  }
}
