// Emulated causal self-attention (kernels/cuda/attention_forward.cu, attention_backward.cu). The
// GPU stores only the per-row logsumexp; the CPU twin needs the (B,NH,T,T) probabilities, which
// the emulation keeps in a temporary and recomputes for the backward.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda_emulated/emulated_common.h"

namespace pptrain::kernels::cuda {
namespace {

// lse (B,NH,T) = log sum_{t2<=t} exp(scale q_t.k_t2), in double from the fp32 inputs.
void attention_lse(float* lse, const float* inp, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  std::vector<double> s(static_cast<std::size_t>(T));
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      for (int t = 0; t < T; ++t) {
        const float* q = inp + (static_cast<std::size_t>(b) * T + t) * 3 * C + h * hs;
        double mx = -INFINITY;
        for (int t2 = 0; t2 <= t; ++t2) {
          const float* k = inp + (static_cast<std::size_t>(b) * T + t2) * 3 * C + C + h * hs;
          double dot = 0.0;
          for (int i = 0; i < hs; ++i) dot += static_cast<double>(q[i]) * k[i];
          s[t2] = scale * dot;
          mx = std::max(mx, s[t2]);
        }
        double sum = 0.0;
        for (int t2 = 0; t2 <= t; ++t2) sum += std::exp(s[t2] - mx);
        lse[(static_cast<std::size_t>(b) * NH + h) * T + t] = static_cast<float>(mx + std::log(sum));
      }
    }
  }
}

}  // namespace

void attention_forward(void* out, float* lse, const void* inp, int B, int T, int C, int NH,
                       DType dt, Stream, const AttentionTiling& tiling) {
  checks::attention_shape("attention_forward", B, T, C, NH);
  checks::attention_tiling("attention_forward", tiling);
  emulated::check_dtype(dt);
  if (B == 0 || T == 0) return;
  const std::size_t btc = static_cast<std::size_t>(B) * T * C;
  emulated::F32View x(inp, 3 * btc, dt);
  emulated::F32View y(out, btc, dt, false);
  std::vector<float> att(static_cast<std::size_t>(B) * NH * T * T);
  cpu::attention_forward(y.data(), att.data(), x.data(), B, T, C, NH);
  y.store();
  attention_lse(lse, x.data(), B, T, C, NH);
}

void attention_backward(void* dinp, const void* dout, const void* inp, const void*,
                        const float*, int B, int T, int C, int NH, DType dt, Stream,
                        bool accumulate, const AttentionTiling& tiling) {
  checks::attention_shape("attention_backward", B, T, C, NH);
  checks::attention_tiling("attention_backward", tiling);
  emulated::check_dtype(dt);
  if (B == 0 || T == 0) return;
  const std::size_t btc = static_cast<std::size_t>(B) * T * C;
  emulated::F32View x(inp, 3 * btc, dt), dy(dout, btc, dt);
  emulated::F32View dx(dinp, 3 * btc, dt, accumulate);
  // Overwriting: the old contents are never read (they may be NaN).
  if (!accumulate) std::fill(dx.data(), dx.data() + 3 * btc, 0.0f);
  std::vector<float> att(static_cast<std::size_t>(B) * NH * T * T), y(btc);
  cpu::attention_forward(y.data(), att.data(), x.data(), B, T, C, NH);
  cpu::attention_backward(dx.data(), dy.data(), x.data(), att.data(), B, T, C, NH);
  dx.store();
}

}  // namespace pptrain::kernels::cuda
