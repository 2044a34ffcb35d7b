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
  schedule::Schedule compute_only;    // as generated or read from the CSV
  schedule::Schedule lowered;         // with SEND/RECV, validated
};

// Throws pptrain::Error naming the config key (or the CSV's line) at fault, and with the
// validator's step x rank grid for a schedule that cannot run.
TrainingPlan make_training_plan(const Config& config);

// The costs `pptrain plan` simulates with: `per_rank` (default F = 1, B = 2, I = W = 1) is
// for a rank's layers; a chunk of an interleaved schedule costs 1/v of it.
schedule::ActionCosts plan_costs(const PipelineConfig& pipeline, const schedule::ActionCosts& per_rank = {});

// The `pptrain plan` report: partition table, schedule grid with the simulated bubble and
// in-flight counts per stage, simulated with plan_costs(per_rank).
std::string describe_training_plan(const Config& config, const TrainingPlan& plan,
                                   const schedule::ActionCosts& per_rank = {});

}  // namespace pptrain
