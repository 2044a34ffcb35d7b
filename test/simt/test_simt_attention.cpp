// [simt] The CUDA attention kernels' own source (kernels/cuda/attention_*.cu), compiled by g++
// and run in the SIMT emulator, against the CPU twin by the same rule as the [cuda] tests on a
// GPU: the tensor-core bf16 kernels (mma.sync, ldmatrix, cp.async) and the fp32 ones. This is
// how a kernel change is checked in CI, before a GPU run measures it. A second case runs the
// threads of each block in several orders between barriers (warps in lockstep, shuffled, one
// warp far ahead of the others) with cp.async landing as late and as early as a GPU allows: a
// missing __syncthreads or cp.async wait makes the results depend on the run.
#include <catch2/catch.hpp>

#include <cstring>

#include "attention_reference.h"
#include "host_tensor.h"
#include "kernels/simt_emulator/simt_emulator.h"

namespace {

using namespace pptrain::test::cuda;
using pptrain::test::simt::HostTensor;
namespace simt = pptrain::simt;

// Each head-size template (HS_MAX 32, 64, 128), hs not a multiple of 8 (scalar staging: 36, 12),
// partial and exact 64-row tiles, several tiles with a ragged tail, B * NH > 1; small enough for
// the emulator (a fiber switch per thread per barrier).
const AttShape kBf16Shapes[] = {{1, 1, 24, 1},  {2, 7, 36, 3},    {1, 65, 24, 3},  {1, 129, 192, 3},
                                {1, 33, 72, 1}, {1, 200, 128, 2}, {1, 130, 144, 3}, {1, 97, 80, 1},
                                {2, 64, 128, 2}, {1, 257, 128, 1}};
const AttShape kF32Shapes[] = {{1, 1, 24, 1}, {2, 7, 36, 3}, {1, 65, 24, 3}, {1, 40, 256, 2}};

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

TEST_CASE("Emulated CUDA attention kernels match the CPU twin", "[simt]") {
  for (const AttShape& s : kBf16Shapes) check_attention_against_twin<HostTensor>(s, DType::BF16);
  for (const AttShape& s : kF32Shapes) check_attention_against_twin<HostTensor>(s, DType::F32);
}

TEST_CASE("Emulated CUDA attention does not depend on the order threads run in", "[simt]") {
  const AttShape s{1, 130, 144, 3};
  const DType dt = DType::BF16;
  const std::size_t BTC = std::size_t(s.B) * s.T * s.C, lse_n = std::size_t(s.B) * s.NH * s.T;
  const auto inp = rounded(randn(3 * BTC, 520), dt);
  const auto dout = rounded(randn(BTC, 521), dt);
  const auto start = rounded(randn(3 * BTC, 522), dt);
  using simt::CopyLanding;
  using simt::ThreadOrder;
  const simt::LaunchOptions runs[] = {
      {ThreadOrder::Lockstep, CopyLanding::AtWait, 1},
      {ThreadOrder::Shuffled, CopyLanding::AtWait, 7},
      {ThreadOrder::WarpByWarp, CopyLanding::AtWait, 1},
      {ThreadOrder::WarpByWarp, CopyLanding::AtIssue, 1},
      {ThreadOrder::WarpByWarpReversed, CopyLanding::AtWait, 1},
      {ThreadOrder::WarpByWarpReversed, CopyLanding::AtIssue, 1}};
  constexpr int kRuns = sizeof runs / sizeof runs[0];
  std::vector<float> outs[kRuns], lses[kRuns], grads[kRuns];
  for (int run = 0; run < kRuns; ++run) {
    OrderGuard order(runs[run]);
    HostTensor x = HostTensor::from(inp, dt), dy = HostTensor::from(dout, dt);
    HostTensor out(BTC, dt), lse(lse_n, DType::F32), dx = HostTensor::from(start, dt);
    out.poison();
    lse.poison();
    kc::attention_forward(out.data(), lse.f32(), x.data(), s.B, s.T, s.C, s.NH, dt, {});
    kc::attention_backward(dx.data(), dy.data(), x.data(), out.data(), lse.f32(), s.B, s.T, s.C,
                           s.NH, dt, {});
    outs[run] = out.to_host();
    lses[run] = lse.to_host();
    grads[run] = dx.to_host();
  }
  for (int run = 1; run < kRuns; ++run) {
    INFO("run " << run << " (thread order " << int(runs[run].order) << ", copies landing "
                << (runs[run].copies == CopyLanding::AtWait ? "at the wait" : "at issue")
                << ") against lockstep");
    CHECK(bitwise_differences(outs[run], outs[0]) == 0);
    CHECK(bitwise_differences(lses[run], lses[0]) == 0);
    CHECK(bitwise_differences(grads[run], grads[0]) == 0);
  }
}
