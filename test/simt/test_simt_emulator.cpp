// [simt] The SIMT emulator itself: its collectives against the PTX ISA's definitions, cp.async
// landing as configured, and the misuse a GPU would hang or corrupt on reported as errors that
// name the block, warp and lanes (kernels/simt_emulator/simt_emulator.h).
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/simt_emulator/simt_emulator.h"

namespace {

namespace simt = pptrain::simt;
using Catch::Matchers::Contains;

int lane() { return static_cast<int>(simt::thread_idx().x % 32); }

// bf16 bits of a small integer (exact in bf16 and in any fp32 sum of such products).
std::uint16_t bf16_of(int v) {
  const float f = static_cast<float>(v);
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return static_cast<std::uint16_t>(bits >> 16);
}

}  // namespace

TEST_CASE("Emulated mma.sync m16n8k16 computes A B + C from the PTX fragment layout", "[simt]") {
  // Small integers: exact products and sums, so any misplaced element changes the result.
  int A[16][16], B[16][8], Cm[16][8];
  for (int i = 0; i < 16; ++i)
    for (int k = 0; k < 16; ++k) A[i][k] = (i * 7 + k * 3) % 9 - 4;
  for (int k = 0; k < 16; ++k)
    for (int j = 0; j < 8; ++j) B[k][j] = (k * 5 + j * 11) % 7 - 3;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) Cm[i][j] = i - j;
  float D[16][8] = {};
  simt::launch({1, 1, 1}, {32, 1, 1}, 0, [&] {
    const int g = lane() / 4, c = lane() % 4;
    auto pack = [](int lo, int hi) {
      return std::uint32_t{bf16_of(lo)} | std::uint32_t{bf16_of(hi)} << 16;
    };
    const std::uint32_t a[4] = {
        pack(A[g][2 * c], A[g][2 * c + 1]), pack(A[g + 8][2 * c], A[g + 8][2 * c + 1]),
        pack(A[g][2 * c + 8], A[g][2 * c + 9]), pack(A[g + 8][2 * c + 8], A[g + 8][2 * c + 9])};
    const std::uint32_t b[2] = {pack(B[2 * c][g], B[2 * c + 1][g]),
                                pack(B[2 * c + 8][g], B[2 * c + 9][g])};
    const float cin[4] = {float(Cm[g][2 * c]), float(Cm[g][2 * c + 1]), float(Cm[g + 8][2 * c]),
                          float(Cm[g + 8][2 * c + 1])};
    float d[4];
    simt::mma_m16n8k16_bf16(d, a, b, cin);
    D[g][2 * c] = d[0];
    D[g][2 * c + 1] = d[1];
    D[g + 8][2 * c] = d[2];
    D[g + 8][2 * c + 1] = d[3];
  });
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      int want = Cm[i][j];
      for (int k = 0; k < 16; ++k) want += A[i][k] * B[k][j];
      INFO("D[" << i << "][" << j << "]");
      CHECK(D[i][j] == static_cast<float>(want));
    }
  }
}

TEST_CASE("Emulated ldmatrix gives each lane its fragment, with and without .trans", "[simt]") {
  for (const bool trans : {false, true}) {
    INFO("trans " << trans);
    std::vector<std::uint32_t> got(32 * 4);
    simt::launch({1, 1, 1}, {32, 1, 1}, 4 * 8 * 8 * 2, [&] {
      auto* m = reinterpret_cast<std::uint16_t*>(simt::dynamic_shared_memory());
      // Matrix i, row r, column k holds 1000 i + 10 r + k; lane l addresses row l % 8 of matrix l
      // / 8.
      if (lane() == 0) {
        for (int i = 0; i < 4; ++i)
          for (int r = 0; r < 8; ++r)
            for (int k = 0; k < 8; ++k)
              m[(i * 8 + r) * 8 + k] = static_cast<std::uint16_t>(1000 * i + 10 * r + k);
      }
      simt::sync_threads();
      std::uint32_t regs[4];
      simt::ldmatrix(regs, 4, trans, m + lane() * 8);
      std::memcpy(&got[lane() * 4], regs, sizeof regs);
    });
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, c = l % 4;
      for (int i = 0; i < 4; ++i) {
        const std::uint32_t v = got[l * 4 + i];
        const int lo = v & 0xFFFF, hi = v >> 16;
        INFO("lane " << l << " register " << i);
        if (trans) {  // rows 2c and 2c+1 of column g
          CHECK(lo == 1000 * i + 10 * (2 * c) + g);
          CHECK(hi == 1000 * i + 10 * (2 * c + 1) + g);
        } else {  // row g, columns 2c and 2c+1
          CHECK(lo == 1000 * i + 10 * g + 2 * c);
          CHECK(hi == 1000 * i + 10 * g + 2 * c + 1);
        }
      }
    }
  }
}

TEST_CASE("Emulated cp.async lands at the wait or at issue, as configured", "[simt]") {
  for (const simt::CopyLanding landing : {simt::CopyLanding::AtWait, simt::CopyLanding::AtIssue}) {
    alignas(16) const std::uint32_t src[4] = {1, 2, 3, 4};
    std::uint32_t before = 0, after = 0, zero_filled = 1;
    simt::launch({1, 1, 1}, {1, 1, 1}, 32,
                 [&] {
                   auto* dst = reinterpret_cast<std::uint32_t*>(simt::dynamic_shared_memory());
                   simt::cp_async(dst, src, 16, 16);
                   simt::cp_async(dst + 4, src, 16, 0);  // src-size 0: zeros
                   simt::cp_async_commit();
                   before = dst[0];
                   simt::cp_async_wait(0);
                   after = dst[0];
                   zero_filled = dst[4];
                 },
                 {simt::ThreadOrder::Lockstep, landing, 1});
    CHECK(after == 1);
    CHECK(zero_filled == 0);
    CHECK(before == (landing == simt::CopyLanding::AtIssue ? 1u : 0xFFFFFFFFu));  // else the poison
  }
}

TEST_CASE("Emulated shuffles read the source lane's value", "[simt]") {
  std::vector<int> got(32);
  simt::launch({1, 1, 1}, {32, 1, 1}, 0, [&] {
    const int src = (lane() * 5 + 3) % 32;
    got[lane()] = static_cast<int>(simt::shuffle_bits(0xFFFFFFFFu, 100 + lane(), src));
  });
  for (int l = 0; l < 32; ++l) CHECK(got[l] == 100 + (l * 5 + 3) % 32);
}

TEST_CASE("SIMT emulator misuse is an error that names where", "[simt]") {
  SECTION("a __syncthreads some threads never reach") {
    REQUIRE_THROWS_WITH(
        simt::launch({1, 1, 1}, {64, 1, 1}, 0,
                     [] {
                       if (simt::thread_idx().x < 32) simt::sync_threads();
                     }),
        Contains("32 threads wait at __syncthreads that 32 finished threads never reach"));
  }
  SECTION("a warp collective half the lanes skip") {
    REQUIRE_THROWS_WITH(simt::launch({2, 1, 1}, {32, 1, 1}, 0,
                                     [] {
                                       if (lane() < 16) simt::shuffle_bits(0xFFFFFFFFu, 1, 0);
                                     }),
                        Contains("deadlock in block (0,0,0), warp 0: lanes 0,1,2") &&
                            Contains("wait at a shuffle") && Contains("lanes 16,17"));
  }
  SECTION("lanes of one warp at different collectives") {
    REQUIRE_THROWS_WITH(simt::launch({1, 1, 1}, {32, 1, 1}, 0,
                                     [] {
                                       if (lane() == 5) {
                                         simt::sync_warp();
                                       } else {
                                         simt::shuffle_bits(0xFFFFFFFFu, 1, 0);
                                       }
                                     }),
                        Contains("diverged") && Contains("lane 5 at __syncwarp"));
  }
  SECTION("an error inside a thread: a partial shuffle mask") {
    REQUIRE_THROWS_WITH(
        simt::launch({1, 1, 1}, {32, 1, 1}, 0, [] { simt::shuffle_bits(0x0000FFFFu, 1, 0); }),
        Contains("only full warps are emulated"));
  }
  SECTION("a misaligned ldmatrix row") {
    REQUIRE_THROWS_WITH(simt::launch({1, 1, 1}, {32, 1, 1}, 256,
                                     [] {
                                       std::uint32_t r[2];
                                       simt::ldmatrix(r, 2, false,
                                                      simt::dynamic_shared_memory() + 8);
                                     }),
                        Contains("not 16-byte aligned"));
  }
  SECTION("more dynamic shared memory than an H100 has") {
    REQUIRE_THROWS_WITH(simt::launch({1, 1, 1}, {32, 1, 1}, 228 * 1024, [] {}),
                        Contains("dynamic shared memory, at most"));
  }
}
