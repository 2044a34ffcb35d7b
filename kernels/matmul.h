// Linear layer as in PyTorch: weight is stored (OC, C). inp (N,C), out (N,OC).
// Forward: out = inp @ weight^T + bias (bias may be null). Backward accumulates:
// dinp (N,C) += dout @ weight, dweight (OC,C) += dout^T @ inp, dbias (OC) += sum_n dout.
// Any of dinp, dweight, dbias may be null to skip it (a split backward runs the input
// gradient and the weight gradients at different times). F = float uses OpenBLAS sgemm, F = double dgemm.
#pragma once

namespace pptrain::kernels::cpu {

template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int C, int OC);

template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int C, int OC);

}  // namespace pptrain::kernels::cpu
