#include "runtime/training_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"
#include "partition/cost_model.h"
#include "runtime/measured_costs.h"
#include "runtime/memory_plan.h"
#include "runtime/pipeline_layout.h"
#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/schedule_io.h"
#include "schedule/simulator.h"
#include "schedule/timeline.h"
#include "schedule/validator.h"

namespace pptrain {
namespace {

// pipeline.memory_limit_gib: steer the partition under it where the method can be steered,
// then refuse a plan with any rank over it.
void apply_memory_limit(const Config& config, TrainingPlan& plan, bool suggest_fixes) {
  std::size_t smallest = 0;
  const std::vector<StageRange> limited = memory_limit_steers_partition(config.pipeline)
      ? partition_within_memory_limit(config, plan.shape, plan.lowered, smallest)
      : plan.partition;
  const std::string limit = fmt::format("{:g} GiB", config.pipeline.memory_limit_gib);
  std::string refusal;
  if (limited.empty()) {
    refusal = fmt::format("no split of the {} layers into {} stages keeps every pipeline rank under {}: "
                          "the best reaches {} on its largest rank", plan.shape.num_layers(),
                          plan.lowered.stages(), limit, memory_size(smallest));
  } else {
    if (limited != plan.partition) {
      plan.partition_without_limit = plan.partition;
      plan.partition = limited;
    }
    const std::string over = ranks_over_memory_limit(config, plan_memory(config, plan));
    if (!over.empty()) refusal = fmt::format("the memory plan puts {} over {}", over, limit);
  }
  if (refusal.empty()) return;
  const std::string fixes = suggest_fixes ? memory_fixes(config, memory_limit_bytes(config)) : "";
  PPT_THROW("{}: {} (`pptrain plan` breaks it down); {}", config.where("pipeline.memory_limit_gib"), refusal,
            fixes.empty() ? std::string("more pipeline.stages would spread it") : "fits with" + fixes);
}

// What pipeline.memory_limit_gib did to the split: "memory limit 6 GiB per rank: layers per
// stage 2, 4, 4, 4 (without the limit 4, 4, 3, 3); slowest stage +7.1% by the partition's costs".
std::string describe_memory_limit(const Config& config, const TrainingPlan& plan) {
  std::string out = fmt::format("memory limit {:g} GiB per rank (pipeline.memory_limit_gib): ", config.pipeline.memory_limit_gib);
  if (plan.partition_without_limit.empty()) return out + "the split is the method's own, and every rank fits\n";
  auto sizes = [](const std::vector<StageRange>& ranges) {
    std::vector<int> n;
    for (const StageRange& r : ranges) n.push_back(r.num_layers());
    return fmt::format("{}", fmt::join(n, ", "));
  };
  const std::vector<double> costs = partition_costs(config, plan.shape);
  auto slowest = [&](const std::vector<StageRange>& ranges) {
    const std::vector<double> c = stage_costs(ranges, costs);
    return *std::max_element(c.begin(), c.end());
  };
  const double before = slowest(plan.partition_without_limit), after = slowest(plan.partition);
  return out + fmt::format("layers per stage {} (without the limit {}); slowest stage {:+.1f}% by the "
                           "partition's costs\n", sizes(plan.partition), sizes(plan.partition_without_limit),
                           before > 0.0 ? 100.0 * (after / before - 1.0) : 0.0);
}

}  // namespace

TrainingPlan make_training_plan(const Config& config, bool suggest_memory_fixes) {
  TrainingPlan plan;
  plan.shape = GPT2Shape::from_config(config);
  // The stage counts first (partition_layers' checks), as before any schedule is made.
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
  if (memory_limit_bytes(config) > 0) apply_memory_limit(config, plan, suggest_memory_fixes);
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
                          profiled ? "time share" : "FLOP share", plan.lowered.placement);
  if (p.memory_limit_gib > 0.0) out += describe_memory_limit(config, plan);
  out += "\n";
  const schedule::ActionCosts costs = plan_costs(config, plan, costs_spec);
  const schedule::SimResult sim = schedule::simulate(plan.lowered, costs);
  out += "schedule " + schedule::describe(plan.lowered) + ", simulated with " + describe_costs(costs_spec, costs) + ":\n";
  out += schedule::format_grid(plan.lowered, &sim);
  return out;
}

}  // namespace pptrain
