// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Elementwise over n values; backward accumulates into dinp.
#pragma once

#include <cstddef>

namespace pptrain::kernels::cpu {

template <typename F>
void gelu_forward(F* out, const F* inp, std::size_t n);

template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, std::size_t n);

}  // namespace pptrain::kernels::cpu
