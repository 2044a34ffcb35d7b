// [simt] The attention kernels' CUDA source in the SIMT emulator, its threads taking turns in
// several orders between barriers (warps in lockstep, shuffled, one warp far ahead of the
// others) with cp.async copies landing as late and as early as a GPU allows. The results must
// agree bitwise: a missing __syncthreads or cp.async wait makes them depend on the run. (The
// [cuda] tests in the same executable compare every kernel with its CPU twin.)
#include <algorithm>
#include <cstring>

#include "cuda_test_util.h"
#include "kernels/simt_emulator/simt_emulator.h"

namespace {

using namespace pptrain::test::cuda;
namespace simt = pptrain::simt;

// How many elements differ in their bits (NaN counts as equal to the same NaN).
std::size_t bitwise_differences(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

struct OrderGuard {
  explicit OrderGuard(simt::LaunchOptions options) { simt::default_launch_options() = options; }
  ~OrderGuard() { simt::default_launch_options() = {}; }
};

}  // namespace

TEST_CASE("Emulated CUDA attention does not depend on the order threads run in", "[simt]") {
  // hs = 48 (HS_MAX 64), T = 130: three key tiles of 64, the last ragged; in the default tile
  // shapes (the two-m-tile forward) and in the 8-warp ones (dk/dv also on 32-query tiles, the
  // backward holding its own rows' fragments in registers).
  const int B = 1, T = 130, C = 144, NH = 3;
  const DType dt = DType::BF16;
  const std::size_t BTC = std::size_t(B) * T * C, lse_n = std::size_t(B) * NH * T;
  const auto inp = rounded(randn(3 * BTC, 520), dt);
  const auto dout = rounded(randn(BTC, 521), dt);
  const auto start = rounded(randn(3 * BTC, 522), dt);
  using simt::CopyLanding;
  using simt::ThreadOrder;
  const simt::LaunchOptions runs[] = {{ThreadOrder::Lockstep, CopyLanding::AtWait, 1},
                                      {ThreadOrder::Shuffled, CopyLanding::AtWait, 7},
                                      {ThreadOrder::WarpByWarp, CopyLanding::AtWait, 1},
                                      {ThreadOrder::WarpByWarp, CopyLanding::AtIssue, 1},
                                      {ThreadOrder::WarpByWarpReversed, CopyLanding::AtWait, 1},
                                      {ThreadOrder::WarpByWarpReversed, CopyLanding::AtIssue, 1}};
  constexpr int kRuns = sizeof runs / sizeof runs[0];
  kc::AttentionTiling eight_warps;
  eight_warps.forward_warps = 8;
  eight_warps.forward_row_tiles = 1;
  eight_warps.dq_warps = 8;
  eight_warps.dkv_warps = 8;
  eight_warps.dkv_query_rows = 32;
  eight_warps.hold_row_fragments = true;
  const kc::AttentionTiling tilings[] = {{}, eight_warps};
  DeviceArray x = DeviceArray::from(inp, dt), dy = DeviceArray::from(dout, dt);
  std::vector<float> outs[2][kRuns], lses[2][kRuns], grads[2][kRuns];
  for (int tiling = 0; tiling < 2; ++tiling) {
    for (int run = 0; run < kRuns; ++run) {
      OrderGuard order(runs[run]);
      DeviceArray out(BTC, dt), lse(lse_n, DType::F32), dx = DeviceArray::from(start, dt);
      out.poison();
      lse.poison();
      kc::attention_forward(out.data(), lse.f32(), x.data(), B, T, C, NH, dt, {},
                            tilings[tiling]);
      kc::attention_backward(dx.data(), dy.data(), x.data(), out.data(), lse.f32(), B, T, C, NH,
                             dt, {}, true, tilings[tiling]);
      outs[tiling][run] = out.to_host();
      lses[tiling][run] = lse.to_host();
      grads[tiling][run] = dx.to_host();
    }
  }
  for (int tiling = 0; tiling < 2; ++tiling) {
    for (int run = 0; run < kRuns; ++run) {
      INFO((tiling == 0 ? "default" : "8-warp") << " tiles, run " << run << " (thread order "
                << int(runs[run].order) << ", copies landing "
                << (runs[run].copies == CopyLanding::AtWait ? "at the wait" : "at issue")
                << ") against default tiles in lockstep");
      CHECK(bitwise_differences(outs[tiling][run], outs[0][0]) == 0);
      CHECK(bitwise_differences(lses[tiling][run], lses[0][0]) == 0);
      CHECK(bitwise_differences(grads[tiling][run], grads[0][0]) == 0);
    }
  }
}
