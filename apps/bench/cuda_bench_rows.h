// The kernel benchmark's pieces (apps/bench/bench_cuda_kernels.cpp): device tensors with random
// or poisoned contents, a row of the table (one op call, timed with CUDA events), and the summary
// of the rows that do a default row's work another way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"

namespace pptrain::bench {

namespace kc = pptrain::kernels::cuda;
using kc::DType;

MemoryTracker& tracker();  // the device memory of every benchmark buffer

// `n` elements of `dt` (F32 also holds ints and the fp32-always tensors) on the device.
struct Tensor {
  kc::DeviceBuffer buf;
  std::size_t n = 0;
  DType dt = DType::F32;
  Tensor(std::size_t count, DType type);
  void* p() { return buf.data(); }
  float* f() { return buf.as<float>(); }
  std::uint16_t* h() { return buf.as<std::uint16_t>(); }
  int* i() { return buf.as<int>(); }
  double* d() { return buf.as<double>(); }

  // Normal(0, scale) values (|x| when positive). A 1M-value random chunk is tiled over the
  // buffer: filling 124M parameters value by value on the host would cost seconds per array,
  // and the memory-bound kernels' speed does not depend on the values repeating.
  Tensor& random(std::uint64_t seed, double scale, bool positive = false);
  Tensor& poisoned();
  // Non-finite values in the whole tensor (a NaN left by the poison, an overflow).
  std::size_t count_nonfinite() const;
};

struct Row {
  std::string name;
  int calls;                              // launches of this kernel in one training step
  double flops;                           // per launch; 0 for the memory-bound kernels
  double bytes;                           // per launch; 0 where FLOPs are what bounds it
  std::function<void()> launch, prepare;  // prepare (untimed) runs before every sample
  std::vector<Tensor*> outputs;           // checked for non-finite values afterwards
  int tiling_sweep = 0;                   // 1 forward, 2 backward: an attention tile shape
  std::string tile_shape;                 // ... which one
  int alternative_of = -1;  // a candidate for the default of row [i]: same work, another way
  bool quiet = false;       // an alternative left out of the table (only the summary names it)
};

struct Options {
  int B = 16, T = 1024, warmup = 3, reps = 10, iters = 5;
  std::string dtype = "both";
};

// Median over `reps` samples of ms per launch (CUDA events on the legacy default stream).
double time_row(const Row& row, const Options& o);

// The alternatives faster than their row by over 1% (timing noise), the best one per row, and
// the step with all of them: which defaults the next change should flip. measured: ms per
// launch of each row, -1 where it failed.
void print_alternatives(DType dt, const std::vector<Row>& rows, const std::vector<double>& measured,
                        double step_ms, std::int64_t tokens, double flops_per_token);

}  // namespace pptrain::bench
