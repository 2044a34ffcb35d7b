// Token + position embedding, CPU twin. Shapes: inp (B,T) ids, wte (Vp,C), wpe (maxT,C),
// out/dout (B,T,C).
#include "kernels/encoder.h"

#include <algorithm>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

template <typename F>
void encoder_forward(F* out, const int* inp, const F* wte, const F* wpe, int B, int T, int C) {
  const std::ptrdiff_t BT = std::ptrdiff_t{B} * T;
#pragma omp parallel for schedule(static) if (BT * C >= kMinParallelWork)
  for (std::ptrdiff_t bt = 0; bt < BT; ++bt) {
    const int t = static_cast<int>(bt % T);
    F* out_bt = out + bt * C;
    const F* wte_ix = wte + std::ptrdiff_t{inp[bt]} * C;
    const F* wpe_t = wpe + std::ptrdiff_t{t} * C;
    for (int c = 0; c < C; ++c) out_bt[c] = wte_ix[c] + wpe_t[c];
  }
}

// Repeated token ids make this a scatter-add. Threads own disjoint channel blocks and walk the
// tokens in (b,t) order, so every dwte/dwpe entry is summed in one fixed order: bitwise
// reproducible for any thread count, no atomics.
template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int* inp, int B, int T, int C) {
  const std::ptrdiff_t BT = std::ptrdiff_t{B} * T;
  const int nblocks = (C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (BT * C >= kMinParallelWork)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * kChannelBlock;
    const int c1 = std::min(C, c0 + kChannelBlock);
    for (std::ptrdiff_t bt = 0; bt < BT; ++bt) {
      const int t = static_cast<int>(bt % T);
      const F* dout_bt = dout + bt * C;
      F* dwte_ix = dwte + std::ptrdiff_t{inp[bt]} * C;
      F* dwpe_t = dwpe + std::ptrdiff_t{t} * C;
      for (int c = c0; c < c1; ++c) {
        dwte_ix[c] += dout_bt[c];
        dwpe_t[c] += dout_bt[c];
      }
    }
  }
}

template void encoder_forward<float>(float*, const int*, const float*, const float*, int, int, int);
template void encoder_forward<double>(double*, const int*, const double*, const double*, int, int,
                                      int);
template void encoder_backward<float>(float*, float*, const float*, const int*, int, int, int);
template void encoder_backward<double>(double*, double*, const double*, const int*, int, int, int);

}  // namespace pptrain::kernels::cpu
