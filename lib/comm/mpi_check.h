// MPI_CHECK: the MPI member of the error-check macro family (with CUDA_CHECK, CUBLAS_CHECK
// and NCCL_CHECK in kernels/cuda): throws pptrain::Error naming the call, MPI's own error
// text, and (through PPT_THROW) the rank and source line.
#pragma once

#include <mpi.h>

#include "core/error.h"

#define MPI_CHECK(expr)                                              \
  do {                                                               \
    const int mpi_check_rc = (expr);                                 \
    if (mpi_check_rc != MPI_SUCCESS) {                               \
      char mpi_check_msg[MPI_MAX_ERROR_STRING];                      \
      int mpi_check_len = 0;                                         \
      MPI_Error_string(mpi_check_rc, mpi_check_msg, &mpi_check_len); \
      PPT_THROW("{} failed: {}", #expr, mpi_check_msg);              \
    }                                                                \
  } while (0)
