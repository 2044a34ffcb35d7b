// [cuda] causal attention: the flash-style forward (out and logsumexp) and the recomputing
// backward against the CPU twin (kernels/attention.h, which stores the (T,T) probabilities),
// fp32 and bf16 storage.
#include <algorithm>
#include <cmath>

#include "attention_reference.h"
#include "cuda_test_util.h"

namespace {

using namespace pptrain::test::cuda;

// Head sizes 24, 12, 8 (HS_MAX 32), 36 and 64 (HS_MAX 64), 72 and 128 (HS_MAX 128, above 48 KiB
// of shared memory); T = 1, 7, 33, 40, 65, 129: single rows, partial tiles, several tiles.
// The bf16 tensor-core kernels tile by 64 rows and stage 8 values per load when hs and C are
// multiples of 8: the second row adds hs = 32, 48, 80 (vectorised, k-steps padded to HS_MAX),
// T = 200 and 257 (several 64-tiles with a ragged tail; at hs = 128 the dk/dv kernel walks query
// tiles of 32), B * NH = 36 with T = 64 (one exact tile) and a long T = 1024 at hs = 64.
const AttShape kShapes[] = {{1, 1, 24, 1},    {2, 7, 36, 3},     {1, 65, 24, 3},
                            {2, 65, 36, 1},   {1, 129, 192, 3},  {1, 33, 72, 1},
                            {2, 40, 256, 2},  {2, 200, 128, 4},  {1, 130, 144, 3},
                            {1, 97, 80, 1},   {1, 257, 128, 1},  {3, 64, 768, 12},
                            {1, 1024, 128, 2}};

}  // namespace

TEST_CASE("CUDA attention forward/backward match the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const AttShape& s : kShapes) check_attention_against_twin<DeviceArray>(s, dt);
  }
}

TEST_CASE("CUDA attention is bitwise deterministic", "[cuda]") {
  const AttShape s{2, 200, 192, 3};
  for (const DType dt : {DType::F32, DType::BF16}) {
    INFO("dtype " << kc::dtype_name(dt));
    const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
    const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
    const auto inp = rounded(randn(3 * BTC, 510), dt);
    const auto dout = rounded(randn(BTC, 511), dt);
    const auto start = rounded(randn(3 * BTC, 512), dt);
    DeviceArray d_inp = DeviceArray::from(inp, dt), d_dout = DeviceArray::from(dout, dt);
    std::vector<float> outs[2], lses[2], grads[2];
    for (int run = 0; run < 2; ++run) {
      DeviceArray d_out(BTC, dt), d_lse(lse_n, DType::F32), d_dinp = DeviceArray::from(start, dt);
      kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {});
      kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                             s.B, s.T, s.C, s.NH, dt, {});
      outs[run] = d_out.to_host();
      lses[run] = d_lse.to_host();
      grads[run] = d_dinp.to_host();
    }
    CHECK(outs[0] == outs[1]);
    CHECK(lses[0] == lses[1]);
    CHECK(grads[0] == grads[1]);
  }
}
