// Host-side CUDA and NCCL glue for the GPU transports (lib/comm), included from .cpp files
// only, in builds with the CUDA backend. CUDA_CHECK is the kernels' own macro
// (kernels/cuda/cuda_check.cuh, plain C++ despite its name); NCCL_CHECK joins the family
// (MPI_CHECK, CUDA_CHECK, CUBLAS_CHECK, NCCL_CHECK): each throws pptrain::Error naming the
// failing call and the library's own error text.
//
// Every NCCL communicator here is non-blocking (ncclConfig_t::blocking = 0), so NCCL calls
// may return ncclInProgress: NCCL_CHECK lets that through and the caller settles the
// communicator (polls ncclCommGetAsyncError) under the run's timeout.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "kernels/cuda/cuda_check.cuh"

#if PPTRAIN_WITH_NCCL
#include <nccl.h>

#define NCCL_CHECK(expr)                                                                   \
  do {                                                                                     \
    const ncclResult_t nccl_check_rc = (expr);                                             \
    if (nccl_check_rc != ncclSuccess && nccl_check_rc != ncclInProgress) {                 \
      const char* nccl_check_text = ncclGetLastError(nullptr);                             \
      PPT_THROW("{} failed: {} ({})", #expr, ncclGetErrorString(nccl_check_rc),            \
                nccl_check_text != nullptr ? nccl_check_text : "no detail");               \
    }                                                                                      \
  } while (0)
#endif

namespace pptrain::comm_detail {

// True once the work recorded in `event` is done; throws on an asynchronous CUDA fault.
inline bool event_done(cudaEvent_t event) {
  const cudaError_t rc = cudaEventQuery(event);
  if (rc == cudaErrorNotReady) return false;
  CUDA_CHECK(rc);
  return true;
}

}  // namespace pptrain::comm_detail
