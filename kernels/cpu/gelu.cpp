// GELU, tanh approximation (GPT-2's), CPU twin. Elementwise over n values.
#include "kernels/gelu.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {
namespace {

constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kGeluCubic = 0.044715;

}  // namespace

template <typename F>
void gelu_forward(F* out, const F* inp, std::size_t n) {
  const F s = static_cast<F>(kGeluScale), k = static_cast<F>(kGeluCubic);
#pragma omp parallel for schedule(static) if (n >= std::size_t(kMinParallelWork))
  for (std::size_t i = 0; i < n; ++i) {
    const F x = inp[i];
    out[i] = F(0.5) * x * (F(1) + std::tanh(s * (x + k * x * x * x)));
  }
}

// d/dx [0.5 x (1 + tanh u)] with u = s (x + k x^3):
//   0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 k x^2).
// sech^2 is taken as 1 - tanh^2 rather than 1/cosh^2, which overflows for large |u|.
template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, std::size_t n) {
  const F s = static_cast<F>(kGeluScale), k = static_cast<F>(kGeluCubic);
#pragma omp parallel for schedule(static) if (n >= std::size_t(kMinParallelWork))
  for (std::size_t i = 0; i < n; ++i) {
    const F x = inp[i];
    const F th = std::tanh(s * (x + k * x * x * x));
    const F grad =
        F(0.5) * (F(1) + th) + F(0.5) * x * (F(1) - th * th) * s * (F(1) + F(3) * k * x * x);
    dinp[i] += grad * dout[i];
  }
}

template void gelu_forward<float>(float*, const float*, std::size_t);
template void gelu_forward<double>(double*, const double*, std::size_t);
template void gelu_backward<float>(float*, const float*, const float*, std::size_t);
template void gelu_backward<double>(double*, const double*, const double*, std::size_t);

}  // namespace pptrain::kernels::cpu
