// Linear layer, CPU twin: out (N,OC) = inp (N,C) @ weight^T (weight stored (OC,C)) + bias (OC).
// The products go through OpenBLAS (row-major); only the bias sums are loops here.
#include "kernels/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {
namespace {

// c (M,Nc) = alpha * op(a) @ op(b) + beta * c, row-major; one name for both precisions.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int Nc, int K, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, Nc, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int Nc, int K, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, Nc, K, 1.0, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int C, int OC) {
  if (N <= 0 || OC <= 0) return;
    // Seed out with the bias (or zero) and let the gemm add to it (beta = 1): one pass over out.
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{N} * OC >= kMinParallelWork)
  for (int n = 0; n < N; ++n) {
    F* out_n = out + std::ptrdiff_t{n} * OC;
    for (int o = 0; o < OC; ++o) out_n[o] = bias != nullptr ? bias[o] : F(0);
  }
  if (C <= 0) return;  // BLAS rejects lda = 0; the product is empty anyway.
  gemm(CblasNoTrans, CblasTrans, N, OC, C, inp, C, weight, C, F(1), out, OC);
}

template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int C, int OC) {
  if (N <= 0 || OC <= 0) return;
  if (C > 0) {
    // dinp (N,C) += dout (N,OC) @ weight (OC,C)
    if (dinp != nullptr)
      gemm(CblasNoTrans, CblasNoTrans, N, C, OC, dout, OC, weight, C, F(1), dinp, C);
    // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
    if (dweight != nullptr)
      gemm(CblasTrans, CblasNoTrans, OC, C, N, dout, OC, inp, C, F(1), dweight, C);
  }
  if (dbias == nullptr) return;
  // dbias (OC) += sum over rows of dout: threads own output-channel blocks and visit rows in
  // order, so the sum is the same for any thread count.
  const int nblocks = (OC + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (std::ptrdiff_t{N} * OC >= kMinParallelWork)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int o0 = blk * kChannelBlock;
    const int o1 = std::min(OC, o0 + kChannelBlock);
    for (int n = 0; n < N; ++n) {
      const F* dout_n = dout + std::ptrdiff_t{n} * OC;
      for (int o = o0; o < o1; ++o) dbias[o] += dout_n[o];
    }
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int,
                                    int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace pptrain::kernels::cpu
