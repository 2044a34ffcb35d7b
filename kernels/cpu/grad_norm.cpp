// Global gradient norm pieces, CPU twin. x: n fp32 values.
#include "kernels/grad_norm.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

// Partial sums over fixed 64K-value chunks, added in chunk order: the result depends on n only,
// never on the thread count or on OpenMP's reduction order, so two runs agree bitwise.
double sum_of_squares(const float* x, std::size_t n) {
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  const std::size_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(nchunks, 0.0);
#pragma omp parallel for schedule(static) if (nchunks > 1)
  for (std::size_t c = 0; c < nchunks; ++c) {
    const std::size_t end = std::min(n, (c + 1) * kChunk);
    double s = 0.0;
    for (std::size_t i = c * kChunk; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    partial[c] = s;
  }
  double total = 0.0;
  for (const double s : partial) total += s;
  return total;
}

}  // namespace pptrain::kernels::cpu
