// The device primitive the backward family added to runtime/kernels/device_primitives.cuh, on the
// host emulation: the atomic fp32 add to global memory (red.global.add.f32) that accumulates dQ.

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
