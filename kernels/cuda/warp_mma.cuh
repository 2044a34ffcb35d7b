// The PTX the tensor-core kernels use, each wrapped once: mma.sync (bf16 in, fp32 accumulate),
// ldmatrix, cp.async with zero fill, and the block's dynamic shared memory. Built with
// PPTRAIN_SIMT_EMULATION (g++), each calls the SIMT emulator instead, which implements the
// same fragment layouts and the same "lands at the wait" rule for cp.async; so the kernels'
// source runs unchanged in CI (kernels/simt_emulator/simt_emulator.h).
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane / 4, c = lane % 4,
// two bf16 per 32-bit register with the lower column in the low half:
//   A (16x16, m x k): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..2c+1), a2 = (g, 2c+8..), a3 = (g+8,
//   2c+8..) B (16x8,  k x n): b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g) C (16x8, fp32): c0,
//   c1 = (g, 2c..2c+1), c2, c3 = (g+8, 2c..2c+1)
#pragma once

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace pptrain::kernels::cuda::ptx {

// The block's dynamic shared memory (the launch's third <<< >>> argument), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_shared_memory() {
#ifdef PPTRAIN_SIMT_EMULATION
  return ::pptrain::simt::dynamic_shared_memory();
#else
  extern __shared__ __align__(16) unsigned char pptrain_dynamic_shared[];
  return pptrain_dynamic_shared;
#endif
}

// c += a b (16x8 += 16x16 * 16x8), fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float c[4], const std::uint32_t a[4],
                                         const std::uint32_t b[2]) {
#ifdef PPTRAIN_SIMT_EMULATION
  ::pptrain::simt::mma_m16n8k16_bf16(c, a, b, c);
#else
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// ldmatrix of N = 2 or 4 8x8 bf16 matrices from shared memory: lanes 8i..8i+7 give the 16-byte
// aligned rows of matrix i; register i receives (row g, columns 2c, 2c+1) of matrix i, or with
// TRANS (rows 2c, 2c+1, column g).
template <int N, bool TRANS>
__device__ __forceinline__ void ldmatrix(std::uint32_t r[N], const void* row) {
  static_assert(N == 2 || N == 4, "ldmatrix .x2 or .x4");
#ifdef PPTRAIN_SIMT_EMULATION
  ::pptrain::simt::ldmatrix(r, N, TRANS, row);
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (N == 2 && TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr)
                 : "memory");
  } else if constexpr (N == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr)
                 : "memory");
  } else if constexpr (TRANS) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
  }
#endif
}

// 16 bytes global -> shared without a register round trip (cp.async.cg, L2 only): the bytes of
// `src` when `valid`, else zeros (src-size 0: `src` is not read but must be a real address).
// Lands at a later cp_async_wait; call cp_async_commit to close a group.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#ifdef PPTRAIN_SIMT_EMULATION
  ::pptrain::simt::cp_async(dst, src, 16, valid ? 16 : 0);
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src),
               "r"(src_bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef PPTRAIN_SIMT_EMULATION
  ::pptrain::simt::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most PENDING of this thread's committed groups are still in flight. Other
// threads' copies are visible only after a __syncthreads that follows their wait.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#ifdef PPTRAIN_SIMT_EMULATION
  ::pptrain::simt::cp_async_wait(PENDING);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

}  // namespace pptrain::kernels::cuda::ptx
