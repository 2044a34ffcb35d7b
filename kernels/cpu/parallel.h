// Shared by the CPU twins only: when an OpenMP loop is worth its fork/join.
#pragma once

#include <cstddef>

namespace pptrain::kernels::cpu {

// Below roughly this many scalar operations a parallel region costs more (a few microseconds
// of fork/join) than the loop itself, so kernels pass `if(work >= kMinParallelWork)`.
inline constexpr std::ptrdiff_t kMinParallelWork = std::ptrdiff_t{1} << 15;

// Width of the channel blocks that deterministic reductions over rows (dweight, dbias, dwte)
// are split into: each block is owned by one thread and visits rows in order, so the result
// is bitwise the same for any thread count.
inline constexpr int kChannelBlock = 64;

}  // namespace pptrain::kernels::cpu
