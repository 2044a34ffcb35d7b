// Token + position embedding. Shapes: inp (B,T) token ids, wte (Vp,C), wpe (maxT,C),
// out (B,T,C). Every backward in kernels/ ACCUMULATES (+=) into its gradient outputs, so
// gradients sum over micro-batches and over tied uses without extra copies.
#pragma once

namespace pptrain::kernels::cpu {

template <typename F>
void encoder_forward(F* out, const int* inp, const F* wte, const F* wpe, int B, int T, int C);

// Deterministic: positions are visited in a fixed order, never with atomics.
template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int* inp, int B, int T, int C);

}  // namespace pptrain::kernels::cpu
