// The stage partitioner (DESIGN.md section 7): which contiguous range of model layers
// (0 = embedding, 1..n_layer = blocks, n_layer+1 = head; see gpt2_shape.h) each pipeline
// stage holds. With interleaving there are S = stages * virtual_stages model chunks, placed
// on the ranks by the schedule (schedule.h). A split that breaks contiguity is never valid.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/gpt2_shape.h"
#include "schedule/schedule.h"

namespace pptrain {

struct StageRange {
  int first_layer = 0;  // first model layer of the stage
  int end_layer = 0;    // one past the last (half-open)
  int num_layers() const { return end_layer - first_layer; }
  bool operator==(const StageRange&) const = default;
};

// Whether stage `stage` may hold `range` (a memory limit: runtime/memory_plan.h).
using RangeAllowed = std::function<bool(int stage, const StageRange& range)>;

// S = pipeline.stages * pipeline.virtual_stages non-empty ranges covering [0, num_layers)
// in order, chosen by pipeline.partition:
//   uniform     n_layer blocks split as evenly as possible, the earlier stages taking the
//               one extra block (the last stage already carries the LM head, the heaviest
//               layer in compute); embedding on stage 0, head on stage S-1. Only with fewer
//               blocks than stages does a stage hold no block: at S = n_layer + 1 the head
//               stands alone, at S = n_layer + 2 every layer does.
//   parameters  min_max_partition over layer_costs(shape, "parameters").
//   flops       min_max_partition over each layer's matmul and attention FLOPs.
//   profile     min_max_partition over pipeline.layer_costs, which the trainer and `pptrain
//               plan` measure when the config does not give them (runtime/layer_profile.h).
//   manual      pipeline.manual_layers: layers per stage, embedding and head counted.
// The cost-based methods (parameters, flops, profile) take only ranges `allowed` allows, and
// return empty when no split has them all; uniform and manual ignore it.
// Throws pptrain::Error naming the config key at fault.
std::vector<StageRange> partition_layers(const Config& config, const GPT2Shape& shape,
                                         const RangeAllowed& allowed = {});

// The per-layer costs a cost-based pipeline.partition balances (parameters, FLOPs or
// pipeline.layer_costs); empty for uniform and manual.
std::vector<double> partition_costs(const Config& config, const GPT2Shape& shape);

// The uniform split of partition_layers, for S stages.
std::vector<StageRange> uniform_partition(const GPT2Shape& shape, int stages);

// The contiguous split of layer_costs (one non-negative cost per layer) into `stages`
// non-empty ranges whose largest stage cost is smallest, exactly (dynamic programming,
// O(stages * L^2)). Among splits with that bottleneck it returns the one whose later stages
// take as many layers as possible (last stage first): under 1F1B, stage s stashes the
// activations of up to S - s micro-batches, so the early stages are the ones to keep light.
// With `allowed`, only splits whose every stage's range it allows count; empty when there
// is none.
std::vector<StageRange> min_max_partition(const std::vector<double>& layer_costs, int stages,
                                          const RangeAllowed& allowed = {});

// Sum of layer_costs over each range.
std::vector<double> stage_costs(const std::vector<StageRange>& ranges,
                                const std::vector<double>& layer_costs);

// "embedding + blocks 0-3", "block 4", "blocks 8-11 + head".
std::string describe_layers(const StageRange& range, const GPT2Shape& shape);

// A table, one row per stage: stage, rank (by `placement` over pipeline_stages ranks; 0 means
// ranges.size(), i.e. no interleaving), layers, parameters held (millions; wte counts on both
// the first and the last stage) and the stage's share of the total cost. The cost is
// layer_costs when given (one entry per layer), else the parameters; `cost_label` heads
// its column.
std::string format_partition(const std::vector<StageRange>& ranges, const GPT2Shape& shape,
                             int pipeline_stages = 0,
                             const std::vector<double>& layer_costs = {},
                             const std::string& cost_label = "cost share",
                             schedule::StagePlacement placement = schedule::StagePlacement::Loop);

}  // namespace pptrain
