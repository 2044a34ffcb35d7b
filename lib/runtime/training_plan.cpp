#include "runtime/training_plan.h"

#include <fmt/format.h>

#include "core/error.h"
#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/schedule_io.h"
#include "schedule/simulator.h"
#include "schedule/timeline.h"
#include "schedule/validator.h"

namespace pptrain {

TrainingPlan make_training_plan(const Config& config) {
  TrainingPlan plan;
  plan.shape = GPT2Shape::from_config(config);
  plan.partition = partition_layers(config, plan.shape);
  const PipelineConfig& p = config.pipeline;
  const std::string csv_prefix = "csv:";
  try {
    if (p.schedule.rfind(csv_prefix, 0) == 0) {
      plan.compute_only = schedule::load_schedule_csv(p.schedule.substr(csv_prefix.size()), p.stages,
                                                      p.virtual_stages, p.micro_batches);
    } else {
      plan.compute_only = schedule::generate(p.schedule, p.stages, p.virtual_stages, p.micro_batches);
    }
  } catch (const Error& e) {
    PPT_THROW("{}: {}", config.where("pipeline.schedule"), e.what());
  }
  try {
    plan.lowered = schedule::has_comm(plan.compute_only) ? plan.compute_only : schedule::lower(plan.compute_only);
    schedule::validate_or_throw(plan.lowered);
  } catch (const Error& e) {
    PPT_THROW("{}: {}", config.where("pipeline.schedule"), e.what());
  }
  return plan;
}

schedule::ActionCosts plan_costs(const PipelineConfig& pipeline, const schedule::ActionCosts& per_rank) {
  const double chunk = 1.0 / pipeline.virtual_stages;  // a chunk is 1/v of a rank's layers
  schedule::ActionCosts costs = per_rank;
  costs.forward *= chunk;
  costs.backward *= chunk;
  costs.backward_input *= chunk;
  costs.backward_weight *= chunk;
  return costs;
}

std::string describe_training_plan(const Config& config, const TrainingPlan& plan,
                                   const schedule::ActionCosts& per_rank) {
  const PipelineConfig& p = config.pipeline;
  std::string out = fmt::format(
      "model: {} blocks, {} channels, {} heads, vocab {} (padded {}), seq {}: {:.2f}M parameters\n"
      "pipeline: {} ranks x {} virtual stages = {} stages, {} micro-batches of {} sequences; "
      "data parallel {}: {} ranks in all\n\n",
      plan.shape.n_layer, plan.shape.channels, plan.shape.n_head, plan.shape.vocab_size,
      plan.shape.padded_vocab_size, plan.shape.max_seq_len, plan.shape.num_parameters() / 1e6,
      p.stages, p.virtual_stages, p.stages * p.virtual_stages, p.micro_batches, p.micro_batch_size,
      config.parallel.data, p.stages * config.parallel.data);
  out += "partition (" + p.partition + "):\n" + format_partition(plan.partition, plan.shape, p.stages) + "\n";
  const schedule::SimResult sim = schedule::simulate(plan.lowered, plan_costs(p, per_rank));
  out += "schedule " + schedule::describe(plan.lowered) + ", simulated with " +
         schedule::format_action_costs(per_rank) + " per rank's layers:\n";
  out += schedule::format_grid(plan.lowered, &sim);
  return out;
}

}  // namespace pptrain
