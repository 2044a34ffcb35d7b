// What each pipeline rank will allocate, per memory category, before anything is allocated:
// the stage footprints (model/stage_footprint.h) times how many stashes and message buffers
// the rank's lowered schedule keeps at once, walked with the executor's pooling rules
// (runtime/pipeline_executor.cpp). Pure, so `pptrain plan` prints it on a login node, and the
// trainer compares it with the measured peaks at the end of a run.
//
// Counted: everything the backend's MemoryTracker counts (host memory for runtime.device cpu,
// GPU memory for cuda). Not counted: the CUDA context, NCCL's buffers, the kernels'
// stream-ordered scratch, pinned staging buffers, the data shards (memory-mapped) and
// sampling at the end of a run.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/memory.h"
#include "runtime/training_plan.h"

namespace pptrain {

inline constexpr std::size_t kMemCategories = static_cast<std::size_t>(MemCategory::Count);
using CategoryBytes = std::array<std::size_t, kMemCategories>;  // indexed by MemCategory

struct RankMemoryPlan {
  int pp_rank = 0;
  std::vector<int> stages;     // ascending
  CategoryBytes bytes{};       // the peak of each category (nothing is freed during a run)
  int stashes = 0;             // training stashes over the rank's stages
  int kept_gradients = 0;      // kept-gradient sets of split backwards (I done, W not yet)
  int messages = 0;            // activation-sized message buffers
  bool validation = false;     // plus validation's receive buffer (it borrows training stashes)
  std::size_t total() const;
};

struct MemoryPlan {
  bool gpu = false;           // GPU memory (runtime.device cuda) or host memory
  std::string storage;        // "fp32" | "bf16"
  std::vector<RankMemoryPlan> ranks;  // by pipeline rank; every replica of it holds the same
};

MemoryPlan plan_memory(const Config& config, const TrainingPlan& plan);

// pipeline.memory_limit_gib in bytes; 0 when there is no limit.
std::size_t memory_limit_bytes(const Config& config);

// Whether pipeline.memory_limit_gib steers this partition (a cost-based method: parameters,
// flops, profile; virtual_stages 1) or only checks the split.
bool memory_limit_steers_partition(const PipelineConfig& pipeline);

// The partition of `config` for its lowered schedule under pipeline.memory_limit_gib, where
// memory_limit_steers_partition: the split with the smallest bottleneck among those whose every
// rank's plan fits, exactly (the partitioner's dynamic programme over each (stage, layer
// range)'s planned rank total). Empty when none fits, and then smallest_peak is the smallest
// largest-rank total any split reaches.
std::vector<StageRange> partition_within_memory_limit(const Config& config, const GPT2Shape& shape,
                                                      const schedule::Schedule& lowered,
                                                      std::size_t& smallest_peak);

// The pipeline ranks over pipeline.memory_limit_gib: "rank 0 (9.10 GiB), rank 1 (8.02 GiB)";
// "" when none is, or without a limit.
std::string ranks_over_memory_limit(const Config& config, const MemoryPlan& plan);

// The table `pptrain plan` prints: one row per pipeline rank, the peak of each category and
// the total, then how activations break down and what is not counted.
std::string describe_memory_plan(const MemoryPlan& plan);

// The pipeline rank with the largest planned total (the first of equals), and that total.
const RankMemoryPlan& largest_rank(const MemoryPlan& plan);
std::size_t largest_rank_bytes(const MemoryPlan& plan);

// What would bring every rank under `limit_bytes`, as `--set` overrides with the largest
// rank's planned total, e.g. "--set pipeline.recompute=full (largest rank 9.10 GiB)": recompute
// selective, a memory-limited flops partition (for a uniform or manual split at
// virtual_stages 1), recompute full, then half the micro-batch size with twice the micro-batches (the same
// global batch), then both. Each fix's partition is steered to the limit. Empty when none fits.
std::string memory_fixes(const Config& config, std::size_t limit_bytes);

// "" when `measured` (a tracker's per-category peaks) equals the plan of pipeline rank
// `pp_rank`; otherwise the categories that differ:
// "workspace 4.000 MiB (+2097152 bytes against the plan's 2.000 MiB)".
std::string memory_plan_difference(const MemoryPlan& plan, int pp_rank, const CategoryBytes& measured);

}  // namespace pptrain
