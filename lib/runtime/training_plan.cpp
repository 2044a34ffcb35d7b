#include "runtime/training_plan.h"

#include <fmt/format.h>

#include "core/error.h"
#include "partition/cost_model.h"
#include "runtime/measured_costs.h"
#include "runtime/pipeline_layout.h"
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
                                                      p.virtual_stages, p.micro_batches, stage_placement(p));
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

schedule::ActionCosts plan_costs(const Config& config, const TrainingPlan& plan, const std::string& spec) {
  if (spec == "model") return modelled_stage_costs(config, plan);
  if (spec.rfind("run:", 0) == 0) return measured_stage_costs(spec.substr(4), plan.lowered.stages());
  const schedule::ActionCosts per_rank = spec.empty() ? schedule::ActionCosts{} : schedule::parse_action_costs(spec);
  const double chunk = 1.0 / config.pipeline.virtual_stages;  // a chunk is 1/v of a rank's layers
  schedule::ActionCosts costs = per_rank;
  costs.forward *= chunk;
  costs.backward *= chunk;
  costs.backward_input *= chunk;
  costs.backward_weight *= chunk;
  return costs;
}

schedule::ActionCosts modelled_stage_costs(const Config& config, const TrainingPlan& plan) {
  schedule::ActionCosts costs;
  double sum_forward = 0.0;
  for (const StageRange& range : plan.partition) {
    LayerFlops stage;
    for (int layer = range.first_layer; layer < range.end_layer; ++layer) {
      const LayerFlops f = layer_flops_by_action(plan.shape, layer, config.pipeline.micro_batch_size,
                                                 plan.shape.max_seq_len);
      stage.forward += f.forward;
      stage.backward_input += f.backward_input;
      stage.backward_weight += f.backward_weight;
    }
    costs.forward_per_stage.push_back(stage.forward);
    costs.backward_input_per_stage.push_back(stage.backward_input);
    costs.backward_weight_per_stage.push_back(stage.backward_weight);
    costs.backward_per_stage.push_back(stage.backward_input + stage.backward_weight);
    sum_forward += stage.forward;
  }
  // Per rank, not per stage: interleaved chunks then cost what they are, 1/v of a rank's
  // layers, and makespans compare across schedules.
  const double unit = sum_forward / static_cast<double>(config.pipeline.stages);
  for (auto* v : {&costs.forward_per_stage, &costs.backward_input_per_stage,
                  &costs.backward_weight_per_stage, &costs.backward_per_stage}) {
    for (double& x : *v) x /= unit;
  }
  return costs;
}

std::string describe_costs(const std::string& spec, const schedule::ActionCosts& costs) {
  if (spec == "model") {
    return "modelled " + schedule::format_action_costs(costs) + " (FLOPs; the mean rank's F = 1)";
  }
  if (spec.rfind("run:", 0) == 0) return "measured " + schedule::format_action_costs(costs) + " (ms, " + spec + ")";
  return (spec.empty() ? schedule::format_action_costs(schedule::ActionCosts{}) : spec) + " per rank's layers";
}

std::string describe_training_plan(const Config& config, const TrainingPlan& plan,
                                   const std::string& costs_spec) {
  const PipelineConfig& p = config.pipeline;
  std::string out = fmt::format(
      "model: {} blocks, {} channels, {} heads, vocab {} (padded {}), seq {}: {:.2f}M parameters\n"
      "pipeline: {} ranks x {} virtual stages = {} stages ({} placement), {} micro-batches of {} "
      "sequences; data parallel {}: {} ranks in all\n\n",
      plan.shape.n_layer, plan.shape.channels, plan.shape.n_head, plan.shape.vocab_size,
      plan.shape.padded_vocab_size, plan.shape.max_seq_len, plan.shape.num_parameters() / 1e6,
      p.stages, p.virtual_stages, p.stages * p.virtual_stages,
      schedule::placement_name(plan.lowered.placement), p.micro_batches, p.micro_batch_size,
      config.parallel.data, p.stages * config.parallel.data);
  // The share of each stage's compute: what bounds a pipeline's step (partition: flops
  // balances it; uniform and parameters do not see the LM head's weight).
  std::vector<double> flops(plan.shape.num_layers());
  for (int layer = 0; layer < plan.shape.num_layers(); ++layer) {
    flops[layer] = layer_flops(plan.shape, layer, p.micro_batch_size, plan.shape.max_seq_len);
  }
  // partition: profile balanced measured times: show their shares, not the FLOP model's.
  const bool profiled = p.partition == "profile" && !p.layer_costs.empty();
  out += "partition (" + p.partition + "):\n" +
         format_partition(plan.partition, plan.shape, p.stages, profiled ? p.layer_costs : flops,
                          profiled ? "time share" : "FLOP share", plan.lowered.placement) +
         "\n";
  const schedule::ActionCosts costs = plan_costs(config, plan, costs_spec);
  const schedule::SimResult sim = schedule::simulate(plan.lowered, costs);
  out += "schedule " + schedule::describe(plan.lowered) + ", simulated with " + describe_costs(costs_spec, costs) + ":\n";
  out += schedule::format_grid(plan.lowered, &sim);
  return out;
}

}  // namespace pptrain
