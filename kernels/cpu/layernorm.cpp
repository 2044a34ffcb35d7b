// LayerNorm over the last axis, CPU twin. inp/out/dinp/dout (N,C), weight/bias (C),
// mean/rstd (N). Biased variance and eps inside the sqrt, as torch.nn.LayerNorm.
#include "kernels/layernorm.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {
namespace {

// One row. Statistics are summed in double so the fp32 twin stays close to the fp64 one for
// wide rows (C = 1600 at GPT-2 XL); they are then rounded to F and used in that form, which
// is exactly what the backward will see.
template <typename F>
void layernorm_row(F* out, F* mean, F* rstd, const F* x, const F* weight, const F* bias, int C) {
  double sum = 0.0;
  for (int i = 0; i < C; ++i) sum += x[i];
  const double m = sum / C;
  double var = 0.0;
  for (int i = 0; i < C; ++i) {
    const double d = x[i] - m;
    var += d * d;
  }
  var /= C;
  const F mf = static_cast<F>(m);
  const F sf = static_cast<F>(1.0 / std::sqrt(var + kLayerNormEps));
  for (int i = 0; i < C; ++i) out[i] = (x[i] - mf) * sf * weight[i] + bias[i];
  *mean = mf;
  *rstd = sf;
}

}  // namespace

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* weight, const F* bias,
                       int N, int C) {
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{N} * C >= kMinParallelWork)
  for (int n = 0; n < N; ++n) {
    const std::ptrdiff_t off = std::ptrdiff_t{n} * C;
    layernorm_row(out + off, mean + n, rstd + n, inp + off, weight, bias, C);
  }
}

template <typename F>
void residual_layernorm_forward(F* residual, F* out, F* mean, F* rstd, const F* a, const F* b,
                                const F* weight, const F* bias, int N, int C) {
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{N} * C >= kMinParallelWork)
  for (int n = 0; n < N; ++n) {
    const std::ptrdiff_t off = std::ptrdiff_t{n} * C;
    for (int i = 0; i < C; ++i) residual[off + i] = a[off + i] + b[off + i];
    layernorm_row(out + off, mean + n, rstd + n, residual + off, weight, bias, C);
  }
}

// With xhat = (x - mean) * rstd and dxhat = weight * dout, per row:
//   dinp = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
// dinp is row-parallel; dweight/dbias sum over rows, so they are done in a second pass in which
// each thread owns a block of channels and visits the rows in order (deterministic, no races).
// A null dinp skips the first pass, a null dweight the second (then dbias is not read).
template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                        const F* mean, const F* rstd, int N, int C) {
  const bool par = std::ptrdiff_t{N} * C >= kMinParallelWork;
  const int dinp_rows = dinp != nullptr ? N : 0;
#pragma omp parallel for schedule(static) if (par)
  for (int n = 0; n < dinp_rows; ++n) {
    const std::ptrdiff_t off = std::ptrdiff_t{n} * C;
    const F* x = inp + off;
    const F* dy = dout + off;
    const F m = mean[n];
    const F s = rstd[n];
    double dxhat_mean = 0.0, dxhat_xhat_mean = 0.0;
    for (int i = 0; i < C; ++i) {
      const F xhat = (x[i] - m) * s;
      const F dxhat = weight[i] * dy[i];
      dxhat_mean += dxhat;
      dxhat_xhat_mean += dxhat * xhat;
    }
    const F a = static_cast<F>(dxhat_mean / C);
    const F b = static_cast<F>(dxhat_xhat_mean / C);
    F* dx = dinp + off;
    for (int i = 0; i < C; ++i) {
      const F xhat = (x[i] - m) * s;
      dx[i] += s * (weight[i] * dy[i] - a - xhat * b);
    }
  }

  if (dweight == nullptr) return;
  const int nblocks = (C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (par)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * kChannelBlock;
    const int c1 = std::min(C, c0 + kChannelBlock);
    for (int n = 0; n < N; ++n) {
      const std::ptrdiff_t off = std::ptrdiff_t{n} * C;
      for (int i = c0; i < c1; ++i) {
        const F xhat = (inp[off + i] - mean[n]) * rstd[n];
        dweight[i] += xhat * dout[off + i];
        dbias[i] += dout[off + i];
      }
    }
  }
}

#define PPTRAIN_INSTANTIATE_LAYERNORM(F)                                                    \
  template void layernorm_forward<F>(F*, F*, F*, const F*, const F*, const F*, int, int);   \
  template void residual_layernorm_forward<F>(F*, F*, F*, F*, const F*, const F*, const F*, \
                                              const F*, int, int);                          \
  template void layernorm_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,   \
                                      const F*, int, int);
PPTRAIN_INSTANTIATE_LAYERNORM(float)
PPTRAIN_INSTANTIATE_LAYERNORM(double)
#undef PPTRAIN_INSTANTIATE_LAYERNORM

}  // namespace pptrain::kernels::cpu
