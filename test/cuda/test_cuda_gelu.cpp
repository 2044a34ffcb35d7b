// [cuda] GELU (tanh approximation): forward and accumulating backward against the CPU twin
// (kernels/gelu.h), fp32 and bf16 storage.
#include "cuda_test_util.h"
#include "kernels/gelu.h"

namespace {
namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;
}  // namespace

TEST_CASE("CUDA gelu forward/backward match the CPU twin", "[cuda]") {
  // 1 and 7 values (one partial block), 65*36, and more than one grid-stride sweep (8192 blocks
  // of 256 = 2^21 values).
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{65 * 36},
                                (std::size_t{1} << 21) + 3}) {
      INFO("dtype " << kc::dtype_name(dt) << ", n=" << n);
      const auto inp = rounded(randn(n, 400, 3.0), dt);  // covers the tails, |x| up to ~15
      std::vector<float> out_ref(n);
      cpu::gelu_forward(out_ref.data(), inp.data(), n);
      DeviceArray d_inp = DeviceArray::from(inp, dt), d_out(n, dt);
      d_out.poison();
      kc::gelu_forward(d_out.data(), d_inp.data(), n, dt, {});
      check_close("gelu out", d_out.to_host(), out_ref, tolerance(dt));

      const auto dout = rounded(randn(n, 401), dt);
      auto grad = zeros(n);
      cpu::gelu_backward(grad.data(), inp.data(), dout.data(), n);
      const auto start = accumulator_start(grad, dt, 402);
      DeviceArray d_dout = DeviceArray::from(dout, dt), d_dinp = DeviceArray::from(start, dt);
      kc::gelu_backward(d_dinp.data(), d_inp.data(), d_dout.data(), n, dt, {});
      check_accumulated("gelu dinp", d_dinp.to_host(), start, grad, tolerance(dt));
    }
  }
}
