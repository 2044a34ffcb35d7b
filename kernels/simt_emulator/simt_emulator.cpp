// The SIMT emulator's scheduler (see simt_emulator.h). Each CUDA thread of the running block
// is a fiber with its own stack (fiber_switch.h); one OS thread switches between them. A fiber runs
// until it reaches a barrier (__syncthreads, or a warp collective where it leaves its operands
// in its lane's slot), then the scheduler moves on. When every live thread of the block waits
// at __syncthreads, or all 32 lanes of a warp wait at the same collective, the barrier
// resolves (the collective computes every lane's results at once) and those threads run on.
#include "kernels/simt_emulator/simt_emulator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <exception>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/simt_emulator/fiber_switch.h"

namespace pptrain::simt {
namespace {

constexpr int kWarpSize = 32;
constexpr std::size_t kStackBytes = 256 * 1024;

enum class State { Runnable, AtBlockBarrier, AtWarpCollective, Finished };

// Operands in, results out: the largest are mma's (40 bytes in, 16 out).
struct LaneSlot {
  alignas(8) unsigned char in[48];
  alignas(8) unsigned char out[16];
};
using Slots = std::array<LaneSlot, kWarpSize>;
// Computes every lane's `out` from every lane's `in`; throws on misuse.
using Collective = void (*)(Slots& slots);

struct AsyncCopy {
  unsigned char* dst;
  const unsigned char* src;
  int bytes, src_bytes;
};

struct Fiber {
  FiberContext context;
  unsigned char* stack = nullptr;
  Dim3 thread_idx;
  int linear = 0;
  State state = State::Runnable;
  Collective collective = nullptr;
  const char* collective_name = "";
  std::vector<AsyncCopy> open_group;              // cp.async since the last commit
  std::vector<std::vector<AsyncCopy>> committed;  // oldest first
};

// A region with an inaccessible page right after its last byte.
class GuardedRegion {
 public:
  explicit GuardedRegion(std::size_t bytes) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    usable_ = (bytes + page - 1) / page * page;
    total_ = usable_ + page;
    void* p = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    PPT_CHECK(p != MAP_FAILED, "SIMT emulator: cannot map {} bytes", total_);
    base_ = static_cast<unsigned char*>(p);
    PPT_CHECK(mprotect(base_ + usable_, page, PROT_NONE) == 0, "SIMT emulator: mprotect failed");
  }
  ~GuardedRegion() { munmap(base_, total_); }
  GuardedRegion(const GuardedRegion&) = delete;
  GuardedRegion& operator=(const GuardedRegion&) = delete;
  // The last `bytes` before the guard page (`bytes` a multiple of 16 keeps 16-byte alignment).
  unsigned char* tail(std::size_t bytes) const { return base_ + usable_ - bytes; }
  unsigned char* begin() const { return base_; }

 private:
  unsigned char* base_ = nullptr;
  std::size_t usable_ = 0, total_ = 0;
};

struct BlockRun {
  Dim3 grid, block, block_idx;
  const std::function<void()>* kernel = nullptr;
  unsigned char* shared = nullptr;
  std::size_t shared_bytes = 0;
  std::array<Slots, 32> warp_slots;  // up to 1024 threads
  LaunchOptions options;
  FiberContext scheduler;
  std::exception_ptr error;
};

BlockRun* g_run = nullptr;
Fiber* g_current = nullptr;

std::string where(const Fiber& f) {
  return fmt::format("block ({},{},{}) thread ({},{},{}) (warp {}, lane {})", g_run->block_idx.x,
                     g_run->block_idx.y, g_run->block_idx.z, f.thread_idx.x, f.thread_idx.y,
                     f.thread_idx.z, f.linear / kWarpSize, f.linear % kWarpSize);
}

Fiber& current() {
  PPT_CHECK(g_current != nullptr, "SIMT emulator: a device function was called outside launch()");
  return *g_current;
}

void yield_to_scheduler() {
  Fiber& f = current();
  switch_fiber(f.context, g_run->scheduler);
}

void fiber_entry() {
  fiber_started();
  try {
    (*g_run->kernel)();
  } catch (...) {
    if (!g_run->error) g_run->error = std::current_exception();
  }
  Fiber& f = *g_current;
  f.state = State::Finished;
  switch_fiber(f.context, g_run->scheduler);  // never resumed
}

// Waits at a collective with this lane's operands; returns with its results in the slot.
LaneSlot& enter_collective(Collective collective, const char* name) {
  Fiber& f = current();
  f.collective = collective;
  f.collective_name = name;
  f.state = State::AtWarpCollective;
  LaneSlot& slot = g_run->warp_slots[f.linear / kWarpSize][f.linear % kWarpSize];
  return slot;
}

std::string lanes_in_state(const std::vector<Fiber>& fibers, int warp, State state) {
  std::string s;
  for (int l = 0; l < kWarpSize; ++l) {
    const Fiber& f = fibers[warp * kWarpSize + l];
    if (f.state != state) continue;
    if (!s.empty()) s += ',';
    s += std::to_string(l);
  }
  return s.empty() ? "none" : s;
}

// Runs warp w's collective if all 32 lanes wait at it; returns whether it did.
bool resolve_warp(std::vector<Fiber>& fibers, int nthreads, int w) {
  const int first_lane = w * kWarpSize;
  const int lanes = std::min(kWarpSize, nthreads - first_lane);
  int waiting = 0;
  for (int l = 0; l < lanes; ++l)
    waiting += fibers[first_lane + l].state == State::AtWarpCollective;
  if (waiting == 0) return false;
  PPT_CHECK(lanes == kWarpSize,
            "SIMT emulator: a warp collective in a partial warp ({} threads a block)", nthreads);
  if (waiting < kWarpSize) return false;  // the others may still come
  const Fiber& first = fibers[first_lane];
  for (int l = 1; l < kWarpSize; ++l) {
    const Fiber& f = fibers[first_lane + l];
    PPT_CHECK(f.collective == first.collective,
              "SIMT emulator: warp {} of block ({},{},{}) diverged: lane 0 is at {}, lane {} at {}",
              w, g_run->block_idx.x, g_run->block_idx.y, g_run->block_idx.z, first.collective_name,
              l, f.collective_name);
  }
  first.collective(g_run->warp_slots[w]);
  for (int l = 0; l < kWarpSize; ++l) fibers[first_lane + l].state = State::Runnable;
  return true;
}

// Releases __syncthreads once every thread waits at it; false when all have finished. Throws
// on a deadlock (nobody can move).
bool resolve_block(std::vector<Fiber>& fibers, int nthreads) {
  int at_barrier = 0, finished = 0;
  for (const Fiber& f : fibers) {
    at_barrier += f.state == State::AtBlockBarrier;
    finished += f.state == State::Finished;
  }
  if (finished == nthreads) return false;
  if (at_barrier + finished == nthreads) {
    PPT_CHECK(finished == 0,
              "SIMT emulator: block ({},{},{}): {} threads wait at __syncthreads that {} finished "
              "threads never reach",
              g_run->block_idx.x, g_run->block_idx.y, g_run->block_idx.z, at_barrier, finished);
    for (Fiber& f : fibers) f.state = State::Runnable;
    return true;
  }
  // Nobody can move: describe the first warp that is stuck.
  const int nwarps = (nthreads + kWarpSize - 1) / kWarpSize;
  for (int w = 0; w < nwarps; ++w) {
    const std::string at = lanes_in_state(fibers, w, State::AtWarpCollective);
    if (at != "none") {
      PPT_THROW(
          "SIMT emulator: deadlock in block ({},{},{}), warp {}: lanes {} wait at {}; lanes {} "
          "wait at __syncthreads; lanes {} finished",
          g_run->block_idx.x, g_run->block_idx.y, g_run->block_idx.z, w, at,
          fibers[w * kWarpSize + std::stoi(at.substr(0, at.find(',')))].collective_name,
          lanes_in_state(fibers, w, State::AtBlockBarrier),
          lanes_in_state(fibers, w, State::Finished));
    }
  }
  PPT_THROW("SIMT emulator: deadlock in block ({},{},{})", g_run->block_idx.x, g_run->block_idx.y,
            g_run->block_idx.z);
}

void run_fiber(BlockRun& run, Fiber& f) {
  g_current = &f;
  switch_fiber(run.scheduler, f.context);
  g_current = nullptr;
  if (run.error) std::rethrow_exception(run.error);
}

void run_block(BlockRun& run, std::vector<Fiber>& fibers, int nthreads,
               const LaunchOptions& options, std::mt19937_64& rng) {
  std::memset(run.shared, 0xFF, run.shared_bytes);
  for (int i = 0; i < nthreads; ++i) {
    Fiber& f = fibers[i];
    f.linear = i;
    f.thread_idx =
        Dim3{i % run.block.x, (i / run.block.x) % run.block.y, i / (run.block.x * run.block.y)};
    f.state = State::Runnable;
    f.open_group.clear();
    f.committed.clear();
    prepare_fiber(f.context, f.stack, kStackBytes, fiber_entry);
  }
  const int nwarps = (nthreads + kWarpSize - 1) / kWarpSize;
  std::vector<int> threads(nthreads), warps(nwarps);
  std::iota(threads.begin(), threads.end(), 0);
  std::iota(warps.begin(), warps.end(), 0);
  if (options.order == ThreadOrder::WarpByWarpReversed) std::reverse(warps.begin(), warps.end());
  const bool rounds =
      options.order == ThreadOrder::Lockstep || options.order == ThreadOrder::Shuffled;
  do {
    if (rounds) {
      // Every runnable thread to its next barrier, then every complete warp collective; again.
      bool moved = true;
      while (moved) {
        if (options.order == ThreadOrder::Shuffled)
          std::shuffle(threads.begin(), threads.end(), rng);
        for (const int i : threads) {
          if (fibers[i].state == State::Runnable) run_fiber(run, fibers[i]);
        }
        moved = false;
        for (int w = 0; w < nwarps; ++w) moved = resolve_warp(fibers, nthreads, w) || moved;
      }
    } else {
      // One warp as far as it gets (its collectives resolved at once) before the next starts.
      for (const int w : warps) {
        const int lanes = std::min(kWarpSize, nthreads - w * kWarpSize);
        do {
          for (int l = 0; l < lanes; ++l) {
            Fiber& f = fibers[w * kWarpSize + l];
            if (f.state == State::Runnable) run_fiber(run, f);
          }
        } while (resolve_warp(fibers, nthreads, w));
      }
    }
  } while (resolve_block(fibers, nthreads));
}

}  // namespace

void launch(Dim3 grid, Dim3 block, std::size_t dynamic_shared_bytes,
            const std::function<void()>& kernel, LaunchOptions options) {
  PPT_CHECK(g_run == nullptr, "SIMT emulator: launch() from inside a kernel");
  const std::size_t nthreads = std::size_t(block.x) * block.y * block.z;
  PPT_CHECK(nthreads >= 1 && nthreads <= 1024, "SIMT emulator: {} threads a block (1 to 1024)",
            nthreads);
  PPT_CHECK(dynamic_shared_bytes <= kMaxDynamicSharedBytes,
            "SIMT emulator: {} bytes of dynamic shared memory, at most {}", dynamic_shared_bytes,
            kMaxDynamicSharedBytes);
  if (std::size_t(grid.x) * grid.y * grid.z == 0) return;

  const std::size_t shared_bytes = (dynamic_shared_bytes + 15) / 16 * 16;
  GuardedRegion shared(std::max<std::size_t>(shared_bytes, 16));
  // Stacks: one region; the lowest page of each stack is a guard against overflow.
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  GuardedRegion stacks(nthreads * (kStackBytes + page));
  std::vector<Fiber> fibers(nthreads);
  for (std::size_t i = 0; i < nthreads; ++i) {
    unsigned char* lo = stacks.begin() + i * (kStackBytes + page);
    PPT_CHECK(mprotect(lo, page, PROT_NONE) == 0, "SIMT emulator: mprotect failed");
    fibers[i].stack = lo + page;
  }

  BlockRun run;
  run.grid = grid;
  run.block = block;
  run.kernel = &kernel;
  run.shared = shared.tail(shared_bytes);
  run.shared_bytes = shared_bytes;
  run.options = options;
  adopt_thread(run.scheduler);
  std::mt19937_64 rng(options.seed);
  g_run = &run;
  try {
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          run.block_idx = Dim3{x, y, z};
          run_block(run, fibers, static_cast<int>(nthreads), options, rng);
        }
      }
    }
  } catch (...) {
    g_run = nullptr;
    throw;
  }
  g_run = nullptr;
}

LaunchOptions& default_launch_options() {
  static LaunchOptions options;
  return options;
}

const Dim3& thread_idx() { return current().thread_idx; }
const Dim3& block_idx() { return current(), g_run->block_idx; }
const Dim3& block_dim() { return current(), g_run->block; }
const Dim3& grid_dim() { return current(), g_run->grid; }
unsigned char* dynamic_shared_memory() { return current(), g_run->shared; }

void sync_threads() {
  current().state = State::AtBlockBarrier;
  yield_to_scheduler();
}

void sync_warp() {
  enter_collective([](Slots&) {}, "__syncwarp");
  yield_to_scheduler();
}

// ---- shuffles ----
namespace {
struct ShuffleIn {
  std::uint64_t value;
  int src_lane;
};
}  // namespace

std::uint64_t shuffle_bits(unsigned mask, std::uint64_t value, int src_lane) {
  PPT_CHECK(mask == 0xFFFFFFFFu,
            "SIMT emulator: shuffle mask {:#x} at {} (only full warps are emulated)", mask,
            where(current()));
  LaneSlot& slot = enter_collective(
      [](Slots& slots) {
        for (LaneSlot& s : slots) {
          ShuffleIn in;
          std::memcpy(&in, s.in, sizeof in);
          ShuffleIn src;
          std::memcpy(&src, slots[in.src_lane & (kWarpSize - 1)].in, sizeof src);
          std::memcpy(s.out, &src.value, sizeof src.value);
        }
      },
      "a shuffle");
  const ShuffleIn in{value, src_lane};
  std::memcpy(slot.in, &in, sizeof in);
  yield_to_scheduler();
  std::uint64_t out;
  std::memcpy(&out, slot.out, sizeof out);
  return out;
}

// ---- mma.sync m16n8k16, bf16 inputs, fp32 accumulators ----
namespace {
struct MmaIn {
  std::uint32_t a[4], b[2];
  float c[4];
};

float bf16_lo(std::uint32_t r) { return std::bit_cast<float>(r << 16); }
float bf16_hi(std::uint32_t r) { return std::bit_cast<float>(r & 0xFFFF0000u); }

// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane/4, c = lane%4:
//   A (16x16): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B (16x8):  b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g)
//   C, D (16x8): c0, c1 = (g, 2c..2c+1), c2, c3 = (g+8, 2c..2c+1)
void mma_collective(Slots& slots) {
  double A[16][16], B[16][8], Cm[16][8];
  for (int lane = 0; lane < kWarpSize; ++lane) {
    MmaIn in;
    std::memcpy(&in, slots[lane].in, sizeof in);
    const int g = lane / 4, c = lane % 4;
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r & 1), col = 2 * c + 8 * (r >> 1);
      A[row][col] = bf16_lo(in.a[r]);
      A[row][col + 1] = bf16_hi(in.a[r]);
    }
    for (int r = 0; r < 2; ++r) {
      B[2 * c + 8 * r][g] = bf16_lo(in.b[r]);
      B[2 * c + 8 * r + 1][g] = bf16_hi(in.b[r]);
    }
    for (int e = 0; e < 4; ++e) Cm[g + 8 * (e >> 1)][2 * c + (e & 1)] = in.c[e];
  }
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const int g = lane / 4, c = lane % 4;
    float d[4];
    for (int e = 0; e < 4; ++e) {
      const int row = g + 8 * (e >> 1), col = 2 * c + (e & 1);
      double acc = 0.0;
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      d[e] = static_cast<float>(acc + Cm[row][col]);
    }
    std::memcpy(slots[lane].out, d, sizeof d);
  }
}
}  // namespace

void mma_m16n8k16_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                       const float c[4]) {
  LaneSlot& slot = enter_collective(mma_collective, "mma.sync.m16n8k16");
  MmaIn in;
  std::memcpy(in.a, a, sizeof in.a);
  std::memcpy(in.b, b, sizeof in.b);
  std::memcpy(in.c, c, sizeof in.c);
  std::memcpy(slot.in, &in, sizeof in);
  yield_to_scheduler();
  std::memcpy(d, slot.out, 4 * sizeof(float));
}

// ---- ldmatrix ----
namespace {
struct LdmatrixIn {
  const unsigned char* row;
  int count;
  int transpose;
};

void ldmatrix_collective(Slots& slots) {
  LdmatrixIn in0;
  std::memcpy(&in0, slots[0].in, sizeof in0);
  const unsigned char* rows[32];
  for (int lane = 0; lane < kWarpSize; ++lane) {
    LdmatrixIn in;
    std::memcpy(&in, slots[lane].in, sizeof in);
    PPT_CHECK(in.count == in0.count && in.transpose == in0.transpose,
              "SIMT emulator: ldmatrix lanes 0 and {} disagree on .x{}/.trans", lane, in.count);
    rows[lane] = in.row;
    if (lane >= 8 * in0.count) continue;  // lanes past the addressed matrices give no row
    const unsigned char* lo = g_run->shared;
    PPT_CHECK(in.row >= lo && in.row + 16 <= lo + g_run->shared_bytes,
              "SIMT emulator: ldmatrix row of lane {} in block ({},{},{}) is outside shared memory",
              lane, g_run->block_idx.x, g_run->block_idx.y, g_run->block_idx.z);
    PPT_CHECK((in.row - lo) % 16 == 0,
              "SIMT emulator: ldmatrix row of lane {} in block ({},{},{}) is not 16-byte aligned",
              lane, g_run->block_idx.x, g_run->block_idx.y, g_run->block_idx.z);
  }
  auto element = [&](int matrix, int row, int col) {
    std::uint16_t v;
    std::memcpy(&v, rows[8 * matrix + row] + 2 * col, 2);
    return std::uint32_t{v};
  };
  for (int lane = 0; lane < kWarpSize; ++lane) {
    const int g = lane / 4, c = lane % 4;
    std::uint32_t regs[4] = {};
    for (int m = 0; m < in0.count; ++m) {
      // Without .trans a lane holds (row g, columns 2c, 2c+1); with it (rows 2c, 2c+1, column g).
      regs[m] = in0.transpose ? element(m, 2 * c, g) | element(m, 2 * c + 1, g) << 16
                              : element(m, g, 2 * c) | element(m, g, 2 * c + 1) << 16;
    }
    std::memcpy(slots[lane].out, regs, sizeof regs);
  }
}
}  // namespace

void ldmatrix(std::uint32_t* regs, int count, bool transpose, const void* row) {
  PPT_CHECK(count == 1 || count == 2 || count == 4, "SIMT emulator: ldmatrix .x{}", count);
  LaneSlot& slot = enter_collective(ldmatrix_collective, "ldmatrix");
  const LdmatrixIn in{static_cast<const unsigned char*>(row), count, transpose ? 1 : 0};
  std::memcpy(slot.in, &in, sizeof in);
  yield_to_scheduler();
  std::memcpy(regs, slot.out, count * sizeof(std::uint32_t));
}

// ---- cp.async: copies land at the wait, or at once (LaunchOptions::copies) ----
namespace {
void land(const AsyncCopy& c) {
  std::memcpy(c.dst, c.src, c.src_bytes);
  std::memset(c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
}
}  // namespace

void cp_async(void* shared_dst, const void* global_src, int bytes, int src_bytes) {
  Fiber& f = current();
  auto* dst = static_cast<unsigned char*>(shared_dst);
  PPT_CHECK(bytes == 4 || bytes == 8 || bytes == 16, "SIMT emulator: cp.async of {} bytes at {}",
            bytes, where(f));
  PPT_CHECK(src_bytes >= 0 && src_bytes <= bytes, "SIMT emulator: cp.async src-size {} of {} at {}",
            src_bytes, bytes, where(f));
  PPT_CHECK(dst >= g_run->shared && dst + bytes <= g_run->shared + g_run->shared_bytes,
            "SIMT emulator: cp.async destination outside shared memory at {}", where(f));
  PPT_CHECK(reinterpret_cast<std::uintptr_t>(dst) % bytes == 0 &&
                (src_bytes == 0 || reinterpret_cast<std::uintptr_t>(global_src) % bytes == 0),
            "SIMT emulator: cp.async of {} bytes needs {}-byte aligned addresses at {}", bytes,
            bytes, where(f));
  const AsyncCopy copy{dst, static_cast<const unsigned char*>(global_src), bytes, src_bytes};
  if (g_run->options.copies == CopyLanding::AtIssue) {
    land(copy);
  } else {
    f.open_group.push_back(copy);
  }
}

void cp_async_commit() {
  Fiber& f = current();
  f.committed.push_back(std::move(f.open_group));
  f.open_group.clear();
}

void cp_async_wait(int pending) {
  Fiber& f = current();
  while (static_cast<int>(f.committed.size()) > pending) {
    for (const AsyncCopy& c : f.committed.front()) land(c);
    f.committed.erase(f.committed.begin());
  }
}

}  // namespace pptrain::simt
