// The device primitives the decode family added to runtime/kernels/device_primitives.cuh, on the
// host emulation: the integer butterfly shuffle and the 16-byte global loads and stores.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dsl/Errors.h"
#include "runtime/emulation/HostEmulation.h"
#include "runtime/kernels/device_primitives.cuh"

namespace emu = attnc::host_emulation;

TEST_CASE("shfl_xor_u32 exchanges 32-bit integers between butterfly partners", "[runtime][emulation]") {
  std::vector<uint32_t> got(64);
  emu::launch({1, 1, 1}, {64, 1, 1}, 0, [&] {
    const int tid = attnc_dev::thread_idx_x();
    // Values above 2^24 would not survive a round trip through float.
    const uint32_t mine = 0xF0000000u + static_cast<uint32_t>(tid);
    got[static_cast<size_t>(tid)] = attnc_dev::shfl_xor_u32(mine, 5);
  });
  for (uint32_t tid = 0; tid < 64; ++tid) {
    const uint32_t partner = (tid & ~31u) | ((tid % 32) ^ 5u);
    CHECK(got[tid] == 0xF0000000u + partner);
  }
}

TEST_CASE("a warp reduction of unsigned minima through shfl_xor_u32", "[runtime][emulation]") {
  uint32_t result = 0;
  emu::launch({1, 1, 1}, {32, 1, 1}, 0, [&] {
    const int lane = attnc_dev::thread_idx_x();
    uint32_t value = lane == 17 ? 3u : 0xFFFFFFF0u - static_cast<uint32_t>(lane);
    for (int offset = 16; offset > 0; offset /= 2) {
      const uint32_t other = attnc_dev::shfl_xor_u32(value, offset);
      value = value < other ? value : other;
    }
    if (lane == 0) result = value;
  });
  CHECK(result == 3u);
}

TEST_CASE("16-byte global loads and stores move four words in memory order", "[runtime][emulation]") {
  alignas(16) uint32_t source[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  alignas(16) uint32_t target[8] = {};
  const attnc_dev::U32x4 loaded = attnc_dev::load_global_16(source + 4);
  CHECK(loaded.w[0] == 5);
  CHECK(loaded.w[3] == 8);
  attnc_dev::store_global_16(target, loaded);
  CHECK(target[0] == 5);
  CHECK(target[3] == 8);
  CHECK(target[4] == 0);  // nothing past the 16 bytes
  // A misaligned address is a kernel bug the emulation reports.
  CHECK_THROWS_AS(attnc_dev::load_global_16(reinterpret_cast<const unsigned char*>(source) + 4), attnc::InternalError);
  CHECK_THROWS_AS(attnc_dev::store_global_16(reinterpret_cast<unsigned char*>(target) + 8, loaded),
                  attnc::InternalError);
}
