// A CPU emulator of the CUDA execution model, for tests: it runs the CUDA source of a kernel
// (compiled by g++ with PPTRAIN_SIMT_EMULATION, see cuda_source_compat.h) over host memory,
// one block at a time, each CUDA thread as a fiber of its own. What it models, because the
// tensor-core kernels depend on it and CI has no GPU:
// - __syncthreads as a block barrier, and warp collectives (shuffles, mma.sync, ldmatrix) as
//   warp barriers at which the 32 lanes' operands meet, with the PTX ISA's fragment layouts;
// - dynamic shared memory, filled with 0xFF (NaN in fp32 and bf16) at each block's start and
//   followed by an inaccessible page, so unwritten reads poison results and overruns fault;
// - cp.async groups that land at cp.async.wait_group (a read before the wait sees stale data)
//   or as soon as they are issued (a buffer still in use is overwritten), both as on a GPU;
// - the order threads run between barriers (ThreadOrder), so a missing __syncthreads shows as
//   results that depend on the order.
// Misuse a GPU would hang or corrupt on (a barrier some threads skip, a collective some lanes
// miss, misaligned ldmatrix rows) throws pptrain::Error naming the block, warp and lanes.
// Not modelled: timing, warp divergence inside a collective's operands, memory fences across
// blocks (blocks run one after another), tensor-core rounding (mma sums in double).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace pptrain::simt {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// How the threads of a block take turns between two __syncthreads. Lockstep (and Shuffled, in
// a random thread order) moves every thread to its next barrier before any goes further, so
// warps keep pace; WarpByWarp runs warp 0 as far as it gets before warp 1 starts (Reversed: the
// last warp first), the most a real GPU's warps can drift apart. A kernel whose results differ
// between them reads shared memory that another warp writes without a __syncthreads between.
enum class ThreadOrder { Lockstep, Shuffled, WarpByWarp, WarpByWarpReversed };

// When cp.async copies land: at the wait (the latest a GPU allows: a read before the wait sees
// stale data) or at the copy (the earliest: a copy into a buffer other warps still read
// overwrites it).
enum class CopyLanding { AtWait, AtIssue };

struct LaunchOptions {
  ThreadOrder order = ThreadOrder::Lockstep;
  CopyLanding copies = CopyLanding::AtWait;
  std::uint64_t seed = 1;  // for ThreadOrder::Shuffled
};

// Runs `kernel` (a call of the __global__ function with its arguments) for every thread of
// every block of the grid; blocks in order x, then y, then z. Throws pptrain::Error on misuse.
void launch(Dim3 grid, Dim3 block, std::size_t dynamic_shared_bytes,
            const std::function<void()>& kernel, LaunchOptions options = {});

// What launches through kernels/cuda/kernel_launch.cuh use (tests set the order here).
LaunchOptions& default_launch_options();

// The largest dynamic shared memory a block may ask for: the H100's and H200's 227 KiB.
constexpr std::size_t kMaxDynamicSharedBytes = 227 * 1024;

// ---- for the running thread (called from kernel code) ----
const Dim3& thread_idx();
const Dim3& block_idx();
const Dim3& block_dim();
const Dim3& grid_dim();
unsigned char* dynamic_shared_memory();
void sync_threads();
void sync_warp();

// Lane `src_lane` of this warp's `value` (all 32 lanes must call; full mask only).
std::uint64_t shuffle_bits(unsigned mask, std::uint64_t value, int src_lane);

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d = a b + c (fragments of this lane).
void mma_m16n8k16_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                       const float c[4]);

// ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16: `row` is this lane's row address
// (lanes 8i..8i+7 address matrix i's rows); regs[i] receives this lane's part of matrix i.
void ldmatrix(std::uint32_t* regs, int count, bool transpose, const void* row);

// cp.async.cg.shared.global of `bytes` (4, 8 or 16): `src_bytes` of src, zeros after them.
void cp_async(void* shared_dst, const void* global_src, int bytes, int src_bytes);
void cp_async_commit();
// cp.async.wait_group N: every committed group but the newest `pending` has landed.
void cp_async_wait(int pending);

}  // namespace pptrain::simt
