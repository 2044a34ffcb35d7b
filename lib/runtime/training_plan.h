// Everything a rank decides before it allocates a model: the layout of ranks, the layer
// partition, the lowered and validated schedule. Pure (no MPI, no data), so `pptrain plan`
// prints it without launching ranks, and every rank checks it at start-up.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "model/gpt2_shape.h"
#include "partition/partition.h"
#include "schedule/schedule.h"
#include "schedule/simulator.h"

namespace pptrain {

struct TrainingPlan {
  GPT2Shape shape;
  std::vector<StageRange> partition;  // S = stages x virtual_stages ranges
  // The split the partition method would pick without pipeline.memory_limit_gib, when the
  // limit made it pick another; else empty.
  std::vector<StageRange> partition_without_limit;
  schedule::Schedule compute_only;    // as generated or read from the CSV
  schedule::Schedule lowered;         // with SEND/RECV, validated
};

// Throws pptrain::Error naming the config key (or the CSV's line) at fault, and with the
// validator's step x rank grid for a schedule that cannot run. A plan with a pipeline rank over
// pipeline.memory_limit_gib (runtime/memory_plan.h) fails naming the key and the ranks, with
// the overrides that would fit (memory_fixes) when suggest_memory_fixes (memory_fixes' own
// search passes false).
TrainingPlan make_training_plan(const Config& config, bool suggest_memory_fixes = true);

// The costs `pptrain plan` simulates with, from its --costs text: "" (F = 1, B = 2, I = W = 1)
// or "F=..,B=..,I=..,W=..,comm=.." for a rank's layers, a chunk of an interleaved schedule
// costing 1/v of them; "model": modelled_stage_costs; or "run:DIR": a traced run's
// per-stage medians (runtime/measured_costs.h). Throws naming a bad entry.
schedule::ActionCosts plan_costs(const Config& config, const TrainingPlan& plan, const std::string& spec);

// Per-stage costs from the FLOP model (partition/cost_model.h: layer_flops_by_action), in
// units of the mean rank's forward (a rank's F averages 1): `pptrain plan --costs model`. It sees
// what uniform costs cannot: a heavy last stage (the LM head) or an uneven partition.
schedule::ActionCosts modelled_stage_costs(const Config& config, const TrainingPlan& plan);

// "F=1, B=2, I=1, W=1 per rank's layers", or the modelled per-stage costs, for a report.
std::string describe_costs(const std::string& spec, const schedule::ActionCosts& costs);

// The `pptrain plan` report: partition table, schedule grid with the simulated bubble and
// in-flight counts per stage, simulated with plan_costs(config, plan, costs).
std::string describe_training_plan(const Config& config, const TrainingPlan& plan,
                                   const std::string& costs = "");

}  // namespace pptrain
