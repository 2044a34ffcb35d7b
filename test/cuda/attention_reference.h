// The reference of the attention tests, on a GPU ([cuda]) and in the SIMT emulator ([simt]):
// shapes, the logsumexp in double, and the forward/backward comparison against the CPU twin.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/attention.h"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::test::cuda {

struct AttShape {
  int B, T, C, NH;
};
// lse[b,h,t] = log sum_{t2<=t} exp(scale q_t.k_t2), in double.
std::vector<float> reference_lse(const std::vector<float>& inp, const AttShape& s) {
  const int hs = s.C / s.NH, C3 = 3 * s.C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  std::vector<float> lse(std::size_t(s.B) * s.NH * s.T);
  for (int b = 0; b < s.B; ++b) {
    for (int h = 0; h < s.NH; ++h) {
      for (int t = 0; t < s.T; ++t) {
        std::vector<double> scores(t + 1);
        double m = -INFINITY;
        for (int t2 = 0; t2 <= t; ++t2) {
          double dot = 0.0;
          for (int d = 0; d < hs; ++d) {
            dot += static_cast<double>(inp[(std::size_t(b) * s.T + t) * C3 + h * hs + d]) *
                   inp[(std::size_t(b) * s.T + t2) * C3 + s.C + h * hs + d];
          }
          scores[t2] = dot * scale;
          m = std::max(m, scores[t2]);
        }
        double sum = 0.0;
        for (const double x : scores) sum += std::exp(x - m);
        lse[(std::size_t(b) * s.NH + h) * s.T + t] = static_cast<float>(m + std::log(sum));
      }
    }
  }
  return lse;
}

// Forward (out, lse) and backward (dinp, accumulated; q, k and v parts checked apart) of the
// CUDA attention on `Array`s (device memory, or host memory in the SIMT emulator) against the
// CPU twin, which stores the (T,T) probabilities.
template <typename Array>
void check_attention_against_twin(const AttShape& s, DType dt) {
  namespace cpu = pptrain::kernels::cpu;
  INFO("dtype " << kc::dtype_name(dt) << ", B=" << s.B << " T=" << s.T << " C=" << s.C
                << " NH=" << s.NH);
  const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
  const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
  const auto inp = rounded(randn(3 * BTC, 500), dt);
  std::vector<float> out_ref(BTC), att_ref(lse_n * s.T);
  cpu::attention_forward(out_ref.data(), att_ref.data(), inp.data(), s.B, s.T, s.C, s.NH);
  const auto lse_ref = reference_lse(inp, s);

  Array d_inp = Array::from(inp, dt), d_out(BTC, dt), d_lse(lse_n, DType::F32);
  d_out.poison();
  d_lse.poison();
  kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {});
  check_close("attention out", d_out.to_host(), out_ref, tolerance(dt));
  // lse is fp32 math on identical inputs in both modes.
  check_close("attention lse", d_lse.to_host(), lse_ref, kF32Tol);

  // Backward with the GPU's own out and lse, as training runs it.
  const auto dout = rounded(randn(BTC, 501), dt);
  auto grad = zeros(3 * BTC);
  cpu::attention_backward(grad.data(), dout.data(), inp.data(), att_ref.data(), s.B, s.T, s.C,
                          s.NH);
  const auto start = accumulator_start(grad, dt, 502);
  Array d_dout = Array::from(dout, dt), d_dinp = Array::from(start, dt);
  kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                         s.B, s.T, s.C, s.NH, dt, {});
  const auto result = d_dinp.to_host();
  check_accumulated("attention dinp (q, k, v)", result, start, grad, tolerance(dt));
  // q, k and v parts separately: an error confined to one third must not hide in the others.
  for (int part = 0; part < 3; ++part) {
    std::vector<float> r, st, g;
    for (std::size_t bt = 0; bt < std::size_t(s.B) * s.T; ++bt) {
      for (int c = 0; c < s.C; ++c) {
        const std::size_t i = bt * 3 * s.C + std::size_t(part) * s.C + c;
        r.push_back(result[i]);
        st.push_back(start[i]);
        g.push_back(grad[i]);
      }
    }
    check_accumulated(std::string("attention d") + "qkv"[part], r, st, g, tolerance(dt));
  }
}

}  // namespace pptrain::test::cuda
