// LayerNorm over the last axis, eps 1e-5. N = B*T rows of C values. mean and rstd (N) are
// saved by the forward for the backward. Backward accumulates into dinp, dweight, dbias; a
// null dinp skips the input gradient, a null dweight both parameter gradients.
#pragma once

namespace pptrain::kernels::cpu {

inline constexpr double kLayerNormEps = 1e-5;

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* weight, const F* bias,
                       int N, int C);

template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp,
                        const F* weight, const F* mean, const F* rstd, int N, int C);

// Fused residual: residual = a + b (N,C), then out = LayerNorm(residual). The backward of
// the add is the identity, so callers route d(residual) to both a and b themselves.
template <typename F>
void residual_layernorm_forward(F* residual, F* out, F* mean, F* rstd, const F* a, const F* b,
                                const F* weight, const F* bias, int N, int C);

}  // namespace pptrain::kernels::cpu
