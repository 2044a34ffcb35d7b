// Choosing the attention kernels' tile shapes (AttentionTiling, cuda_ops.h) by timing them on
// the GPU at hand. Every shape gives bitwise the same results, so the choice moves speed only:
// training picks the fastest once per shape at start-up (ComputeDevice::attention_tiling), the
// kernel benchmark times each, and the [cuda] tests check each against the default. Plain C++
// over the ops' public API: the same source serves the GPU build and both emulations.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {

// Every shape the bf16 kernels are built in at hs <= 64: the forward's (its fields) and the
// backward's (theirs); each list starts with AttentionTiling{}'s shape.
std::vector<AttentionTiling> attention_forward_tilings();
std::vector<AttentionTiling> attention_backward_tilings();

// "4 warps x 2 m-tiles"; "dq 4 warps, dk/dv 4 warps x 64 queries[, fragments held]".
std::string forward_shape_name(const AttentionTiling& t);
std::string backward_shape_name(const AttentionTiling& t);

struct AttentionTuning {
  AttentionTiling tiling;                  // the fastest forward and backward shapes
  double forward_ms = 0.0, backward_ms = 0.0;                  // theirs, per call
  double default_forward_ms = 0.0, default_backward_ms = 0.0;  // AttentionTiling{}'s
  int shapes_timed = 0;  // 0: one shape only (fp32 storage, hs > 64), nothing was timed
};

// Device bytes tune_attention needs as scratch for these sizes: inp (B,T,3C), out and dout
// (B,T,C), dinp (B,T,3C) in dt, lse (B,NH,T) fp32.
std::size_t attention_tuning_scratch_bytes(int B, int T, int C, int NH, DType dt);

// Times every shape on `stream` (one untimed call, then `reps` calls, waited for with
// synchronize: host clock) on synthetic inputs written into `scratch`, and returns the
// fastest forward and backward shapes. Blocks the host for 4 x (reps + 1) forward and
// 16 x (reps + 1) backward calls: about 0.2 s for GPT-2 124M at B=16, T=1024 if each takes
// what run 6 measured on an H200 (0.3 and 1.8 ms; docs/gpu-results.md), not itself measured.
AttentionTuning tune_attention(void* scratch, std::size_t scratch_bytes, int B, int T, int C,
                               int NH, DType dt, Stream stream, int reps = 5);

}  // namespace pptrain::kernels::cuda
