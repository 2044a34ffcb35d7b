// CUDA_CHECK / CUBLAS_CHECK: the CUDA members of the error-check macro family (MPI_CHECK is
// in lib/comm/mpi_check.h). They throw pptrain::Error with the failing expression, the
// library's error text, the rank and the source line. CUDA_CHECK_LAUNCH follows every
// kernel launch, so a bad launch configuration is reported where it happened.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define CUDA_CHECK(expr)                                                             \
  do {                                                                               \
    const cudaError_t cuda_check_rc = (expr);                                        \
    if (cuda_check_rc != cudaSuccess) {                                              \
      PPT_THROW("{} failed: {} ({})", #expr, cudaGetErrorString(cuda_check_rc),      \
                cudaGetErrorName(cuda_check_rc));                                    \
    }                                                                                \
  } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(expr)                                                           \
  do {                                                                               \
    const cublasStatus_t cublas_check_rc = (expr);                                   \
    if (cublas_check_rc != CUBLAS_STATUS_SUCCESS) {                                  \
      PPT_THROW("{} failed: cuBLAS status {}", #expr, static_cast<int>(cublas_check_rc)); \
    }                                                                                \
  } while (0)
