// Fused softmax + cross-entropy (+ dlogits), CPU twin. logits (N,Vp), real columns [0,V),
// losses (N), targets (N) in [0,V).
#include "kernels/classifier.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

// Per row: m = max_{i<V} z_i, S = sum_{i<V} exp(z_i - m) summed in double,
// loss = log S + m - z_target. With compute_grad the exponentials are parked in the row itself
// (it is overwritten anyway), so each logit costs one exp and no probability buffer exists.
template <typename F>
void classifier_forward_backward(F* logits, F* losses, const int* targets, int N, int V, int Vp,
                                 F dloss_scale, bool compute_grad) {
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{N} * V >= kMinParallelWork)
  for (int n = 0; n < N; ++n) {
    F* z = logits + std::ptrdiff_t{n} * Vp;
    F maxval = -INFINITY;
    for (int i = 0; i < V; ++i) maxval = z[i] > maxval ? z[i] : maxval;
    const int target = targets[n];
    const double z_target = z[target];
    double sum = 0.0;
    for (int i = 0; i < V; ++i) {
      const F e = std::exp(z[i] - maxval);  // in (0, 1]: no overflow
      sum += e;
      if (compute_grad) z[i] = e;
    }
    losses[n] = static_cast<F>(std::log(sum) + static_cast<double>(maxval) - z_target);
    if (!compute_grad) continue;
    const double inv_sum = 1.0 / sum;
    const double scale = static_cast<double>(dloss_scale);
    for (int i = 0; i < V; ++i) {
      z[i] =
          static_cast<F>(scale * (static_cast<double>(z[i]) * inv_sum - (i == target ? 1.0 : 0.0)));
    }
    for (int i = V; i < Vp; ++i) z[i] = 0;  // padded vocab columns take no part
  }
}

template void classifier_forward_backward<float>(float*, float*, const int*, int, int, int, float,
                                                 bool);
template void classifier_forward_backward<double>(double*, double*, const int*, int, int, int,
                                                  double, bool);

}  // namespace pptrain::kernels::cpu
