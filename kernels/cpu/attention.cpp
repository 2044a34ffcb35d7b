// Causal multi-head self-attention, CPU twin. inp/dinp (B,T,3C) = [q | k | v] per token, head h
// at columns h*hs..(h+1)*hs of each third; att (B,NH,T,T) probabilities; out/dout (B,T,C).
#include "kernels/attention.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

// Each (b, t, h) row is independent: scores, softmax over t2 <= t, weighted sum of v.
template <typename F>
void attention_forward(F* out, F* att, const F* inp, int B, int T, int C, int NH) {
  const int C3 = 3 * C;
  const int hs = C / NH;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(hs)));
  const std::ptrdiff_t rows = std::ptrdiff_t{B} * NH * T;
  // Total work ~B*T*T*C multiply-adds (half of the (t,t2) pairs, each q.k and p*v over C).
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{B} * T * T * C >= 2 * kMinParallelWork)
  for (std::ptrdiff_t r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % T);
    const int h = static_cast<int>((r / T) % NH);
    const int b = static_cast<int>(r / (std::ptrdiff_t{T} * NH));
    const F* base = inp + std::ptrdiff_t{b} * T * C3;
    const F* q = base + std::ptrdiff_t{t} * C3 + h * hs;
    F* att_row = att + r * T;  // r enumerates (b, h, t) in att's layout

    F maxval = -INFINITY;
    for (int t2 = 0; t2 <= t; ++t2) {
      const F* k = base + std::ptrdiff_t{t2} * C3 + C + h * hs;
      F dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < hs; ++i) dot += q[i] * k[i];
      dot *= scale;
      att_row[t2] = dot;
      if (dot > maxval) maxval = dot;
    }
    // Subtract the row max so exp never overflows; the sum is accumulated in double.
    double expsum = 0.0;
    for (int t2 = 0; t2 <= t; ++t2) {
      const F e = std::exp(att_row[t2] - maxval);
      att_row[t2] = e;
      expsum += e;
    }
    const F inv = static_cast<F>(1.0 / expsum);
    for (int t2 = 0; t2 <= t; ++t2) att_row[t2] *= inv;
    for (int t2 = t + 1; t2 < T; ++t2) att_row[t2] = 0;

    F* o = out + (std::ptrdiff_t{b} * T + t) * C + h * hs;
    for (int i = 0; i < hs; ++i) o[i] = 0;
    for (int t2 = 0; t2 <= t; ++t2) {
      const F* v = base + std::ptrdiff_t{t2} * C3 + 2 * C + h * hs;
      const F a = att_row[t2];
      for (int i = 0; i < hs; ++i) o[i] += a * v[i];
    }
  }
}

// Per query row t, with p = att[b,h,t,:] and ds the gradient of the pre-softmax scores:
//   datt[t2] = dout_t . v[t2]          dv[t2] += p[t2] * dout_t
//   ds[t2]   = p[t2] * (datt[t2] - sum_j p[j] datt[j])        (softmax backward)
//   dq_t    += scale * sum_t2 ds[t2] k[t2]    dk[t2] += scale * ds[t2] q_t
// dk and dv of head h in sequence b are written by every query row of that (b,h), so the
// parallel loop runs over (b,h) pairs: no two threads touch the same dinp entry.
template <typename F>
void attention_backward(F* dinp, const F* dout, const F* inp, const F* att, int B, int T, int C,
                        int NH) {
  const int C3 = 3 * C;
  const int hs = C / NH;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(hs)));
  const int pairs = B * NH;
#pragma omp parallel if (std::ptrdiff_t{B} * T * T * C >= kMinParallelWork)
  {
    std::vector<F> datt(static_cast<std::size_t>(T));  // per-thread scratch: one row of T values
#pragma omp for schedule(static)
    for (int bh = 0; bh < pairs; ++bh) {
      const int b = bh / NH;
      const int h = bh % NH;
      const F* base = inp + std::ptrdiff_t{b} * T * C3;
      F* dbase = dinp + std::ptrdiff_t{b} * T * C3;
      for (int t = 0; t < T; ++t) {
        const F* att_row = att + (std::ptrdiff_t{bh} * T + t) * T;
        const F* dout_t = dout + (std::ptrdiff_t{b} * T + t) * C + h * hs;
        const F* q = base + std::ptrdiff_t{t} * C3 + h * hs;
        F* dq = dbase + std::ptrdiff_t{t} * C3 + h * hs;

        double pdot = 0.0;  // sum_j p[j] datt[j]
        for (int t2 = 0; t2 <= t; ++t2) {
          const F* v = base + std::ptrdiff_t{t2} * C3 + 2 * C + h * hs;
          F* dv = dbase + std::ptrdiff_t{t2} * C3 + 2 * C + h * hs;
          F d = 0;
#pragma omp simd reduction(+ : d)
          for (int i = 0; i < hs; ++i) {
            d += v[i] * dout_t[i];
            dv[i] += att_row[t2] * dout_t[i];
          }
          datt[t2] = d;
          pdot += att_row[t2] * d;
        }
        const F pd = static_cast<F>(pdot);
        for (int t2 = 0; t2 <= t; ++t2) {
          const F ds = att_row[t2] * (datt[t2] - pd) * scale;
          const F* k = base + std::ptrdiff_t{t2} * C3 + C + h * hs;
          F* dk = dbase + std::ptrdiff_t{t2} * C3 + C + h * hs;
          for (int i = 0; i < hs; ++i) {
            dq[i] += ds * k[i];
            dk[i] += ds * q[i];
          }
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*, int, int,
                                        int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*, int,
                                         int, int, int);

}  // namespace pptrain::kernels::cpu
