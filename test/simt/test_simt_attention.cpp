// [simt] The attention kernels' CUDA source in the SIMT emulator, its threads taking turns in
// several orders between barriers (warps in lockstep, shuffled, one warp far ahead of the
// others) with cp.async copies landing as late and as early as a GPU allows. The results must
// agree bitwise: a missing __syncthreads or cp.async wait makes them depend on the run. (The
// [cuda] tests in the same executable compare every kernel with its CPU twin.)
#include <algorithm>
#include <cstring>
#include <string>

#include "cuda_test_util.h"
#include "kernels/cuda/attention_tuning.h"
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
  // hs = 48 (HS_MAX 64), T = 130: three key tiles of 64, the last ragged; in every tile shape
  // tune_attention may pick (forward and backward apart), each compared with the default shape
  // in lockstep.
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
  auto describe = [&](const simt::LaunchOptions& o) {
    return "thread order " + std::to_string(int(o.order)) + ", copies landing " +
           (o.copies == CopyLanding::AtWait ? "at the wait" : "at issue");
  };
  DeviceArray x = DeviceArray::from(inp, dt), dy = DeviceArray::from(dout, dt);
  std::vector<float> out0, lse0, grad0;
  for (const kc::AttentionTiling& tiling : kc::attention_forward_tilings()) {
    for (const simt::LaunchOptions& run : runs) {
      INFO("forward " << kc::forward_shape_name(tiling) << ", " << describe(run));
      OrderGuard order(run);
      DeviceArray out(BTC, dt), lse(lse_n, DType::F32);
      out.poison();
      lse.poison();
      kc::attention_forward(out.data(), lse.f32(), x.data(), B, T, C, NH, dt, {}, tiling);
      if (out0.empty()) {
        out0 = out.to_host();
        lse0 = lse.to_host();
      }
      CHECK(bitwise_differences(out.to_host(), out0) == 0);
      CHECK(bitwise_differences(lse.to_host(), lse0) == 0);
    }
  }
  DeviceArray out = DeviceArray::from(out0, dt), lse = DeviceArray::from(lse0, DType::F32);
  for (const kc::AttentionTiling& tiling : kc::attention_backward_tilings()) {
    for (const simt::LaunchOptions& run : runs) {
      INFO("backward " << kc::backward_shape_name(tiling) << ", " << describe(run));
      OrderGuard order(run);
      DeviceArray dx = DeviceArray::from(start, dt);
      kc::attention_backward(dx.data(), dy.data(), x.data(), out.data(), lse.f32(), B, T, C, NH,
                             dt, {}, true, tiling);
      if (grad0.empty()) grad0 = dx.to_host();
      CHECK(bitwise_differences(dx.to_host(), grad0) == 0);
    }
  }
}
