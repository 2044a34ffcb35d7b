// Argument checks of the CUDA ops (cuda_ops.h), shared by the real backend (kernels/cuda/*.cu)
// and its host-memory emulation (kernels/cuda_emulated): one place for each limit and message,
// so the emulated build rejects exactly what a GPU build rejects. Plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda::checks {

inline void encoder_shape(int B, int T, int C) {
  PPT_CHECK(B >= 0 && T >= 0 && C >= 0, "encoder: negative shape B={} T={} C={}", B, T, C);
  PPT_CHECK(std::int64_t{B} * T <= INT32_MAX, "encoder: B*T = {} exceeds 2^31-1",
            std::int64_t{B} * T);
}

// encoder_backward's scratch: at least `need` bytes, 256-byte aligned.
inline void encoder_scratch(const void* scratch, std::size_t scratch_bytes, std::size_t need) {
  PPT_CHECK(scratch != nullptr && scratch_bytes >= need,
            "encoder_backward: scratch of {} bytes given, {} needed (encoder_backward_scratch_bytes)",
            scratch_bytes, need);
  PPT_CHECK(reinterpret_cast<std::uintptr_t>(scratch) % 256 == 0,
            "encoder_backward: scratch must be 256-byte aligned (as cudaMalloc returns)");
}

inline void layernorm_shape(int N, int C) {
  PPT_CHECK(N >= 0 && C >= 0, "layernorm: negative shape N={} C={}", N, C);
}

inline void matmul_shape(const char* what, int N, int C, int OC) {
  PPT_CHECK(N >= 0 && C > 0 && OC > 0, "{}: bad shape N={} C={} OC={}", what, N, C, OC);
}

// The attention kernels' limits: head size <= 128, grid dimensions, 40-bit indexing.
inline void attention_shape(const char* what, int B, int T, int C, int NH) {
  PPT_CHECK(B >= 0 && T >= 0 && C > 0 && NH > 0 && C % NH == 0,
            "{}: bad shape B={} T={} C={} NH={} (C must be a multiple of NH)", what, B, T, C, NH);
  PPT_CHECK(C / NH <= 128, "{}: head size {} > 128 is not supported", what, C / NH);
  PPT_CHECK(NH <= 65535 && B <= 65535, "{}: NH={} or B={} exceeds the grid limit", what, NH, B);
  PPT_CHECK(std::int64_t{B} * T * 3 * C < (std::int64_t{1} << 40), "{}: tensor too large", what);
}

// AttentionTiling (cuda_ops.h): the shapes the bf16 attention kernels are built in.
inline void attention_tiling(const char* what, const AttentionTiling& t) {
  PPT_CHECK(t.forward_warps == 4 || t.forward_warps == 8, "{}: forward_warps {} (4 or 8)", what,
            t.forward_warps);
  PPT_CHECK(t.forward_row_tiles == 1 || t.forward_row_tiles == 2, "{}: forward_row_tiles {} (1 or 2)",
            what, t.forward_row_tiles);
  PPT_CHECK(t.dq_warps == 4 || t.dq_warps == 8, "{}: dq_warps {} (4 or 8)", what, t.dq_warps);
  PPT_CHECK(t.dkv_warps == 4 || t.dkv_warps == 8, "{}: dkv_warps {} (4 or 8)", what, t.dkv_warps);
  PPT_CHECK(t.dkv_query_rows == 32 || t.dkv_query_rows == 64, "{}: dkv_query_rows {} (32 or 64)",
            what, t.dkv_query_rows);
}

inline void adamw(const AdamwBuffers& b, const AdamwStep& step) {
  PPT_CHECK(step.t >= 1, "adamw: the step t counts from 1, got {}", step.t);
  PPT_CHECK(b.params != nullptr && b.grads != nullptr && b.m != nullptr && b.v != nullptr,
            "adamw_update: params, grads, m and v must not be null");
}

// The double-precision reductions' scratch (sum_of_squares_scratch_bytes).
inline void reduce_scratch(const void* scratch, std::size_t scratch_bytes, std::size_t need,
                           const char* name) {
  PPT_CHECK(scratch != nullptr && scratch_bytes >= need, "{}: scratch of {} bytes given, {} needed",
            name, scratch_bytes, need);
}

}  // namespace pptrain::kernels::cuda::checks
