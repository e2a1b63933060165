// The device primitives the backward family added to runtime/kernels/device_primitives.cuh, on the
// host emulation: the atomic fp32 add to global memory (red.global.add.f32) that accumulates dQ, and
// ldmatrix at 32-bit shared addresses.

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "dsl/Errors.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/kernels/device_primitives.cuh"

namespace emu = attnc::host_emulation;

TEST_CASE("atomic_add_f32 sums every thread's contribution of every block", "[runtime][emulation]") {
  std::vector<float> sums(8, 0.5f);
  emu::launch({3, 2, 1}, {64, 1, 1}, 0, [&] {
    const int tid = attnc_dev::thread_idx_x();
    const int block = attnc_dev::block_idx_x() + 3 * attnc_dev::block_idx_y();
    // Small integers: every partial sum is exact in fp32, whatever the order.
    attnc_dev::atomic_add_f32(&sums[static_cast<size_t>(tid % 8)], static_cast<float>(tid + block));
  });
  for (int slot = 0; slot < 8; ++slot) {
    float expected = 0.5f;
    for (int block = 0; block < 6; ++block) {
      for (int tid = slot; tid < 64; tid += 8) expected += static_cast<float>(tid + block);
    }
    CAPTURE(slot);
    CHECK(sums[static_cast<size_t>(slot)] == expected);
  }
}

TEST_CASE("atomic_add_f32 rejects a misaligned address", "[runtime][emulation]") {
  alignas(8) unsigned char bytes[16] = {};
  CHECK_THROWS_AS(attnc_dev::atomic_add_f32(reinterpret_cast<float*>(bytes + 2), 1.0f), attnc::InternalError);
}

TEST_CASE("ldmatrix at a 32-bit shared address loads what the pointer form loads", "[runtime][emulation]") {
  std::vector<uint32_t> by_pointer(32 * 8), by_address(32 * 8);
  emu::launch({1, 1, 1}, {32, 1, 1}, 2 * 32 * 40, [&] {
    const int lane = attnc_dev::thread_idx_x();
    auto* tile = reinterpret_cast<uint16_t*>(attnc_dev::dynamic_shared_memory());
    for (int i = lane; i < 32 * 40; i += 32) tile[i] = static_cast<uint16_t>(i * 7 + 3);
    attnc_dev::block_barrier();
    // Rows of 40 elements; lane l points at row l (16-byte aligned: 80 bytes per row), column 8.
    const uint16_t* row = tile + lane * 40 + 8;
    const uint32_t address = attnc_dev::shared_u32(tile) + 2 * (lane * 40 + 8);
    uint32_t a[4], b[4], c[4], d[4];
    attnc_dev::ldmatrix_x4(a, row);
    attnc_dev::ldmatrix_x4_at(b, address);
    attnc_dev::ldmatrix_x4_trans(c, row);
    attnc_dev::ldmatrix_x4_trans_at(d, address);
    for (int i = 0; i < 4; ++i) {
      by_pointer[static_cast<size_t>(lane * 8 + i)] = a[i];
      by_address[static_cast<size_t>(lane * 8 + i)] = b[i];
      by_pointer[static_cast<size_t>(lane * 8 + 4 + i)] = c[i];
      by_address[static_cast<size_t>(lane * 8 + 4 + i)] = d[i];
    }
  });
  CHECK(by_pointer == by_address);
  CHECK(by_pointer[0] == (uint32_t{8 * 7 + 3} | (uint32_t{9 * 7 + 3} << 16)));  // row 0, columns 8 and 9
}
