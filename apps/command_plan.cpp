// `pptrain plan CONFIG`: the partition, the schedule grid, the simulated bubble, the
// in-flight micro-batches per stage and the memory each rank will allocate, without
// launching ranks or reading data.
#include <fmt/format.h>

#include <fstream>
#include <memory>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "core/error.h"
#include "model/compute_device.h"
#include "runtime/grad_reduction.h"
#include "runtime/layer_profile.h"
#include "runtime/memory_plan.h"
#include "runtime/schedule_comparison.h"
#include "runtime/training_plan.h"
#include "schedule/schedule_io.h"
#include "schedule/simulator.h"
#include "schedule/timeline.h"

namespace pptrain::app {

Command add_plan_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("plan", "show the partition and the simulated schedule of a config");
  struct Options {
    std::string config_path;
    std::vector<std::string> overrides;
    std::string trace_path, csv_path, costs;
    double fit_gib = 0.0;
    bool compare = false;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("config", o->config_path, "the YAML config file")->required();
  cmd->add_option("--set", o->overrides, "override a config key (repeatable)");
  cmd->add_option("--trace", o->trace_path, "write the simulated timeline as a Chrome/Perfetto trace");
  cmd->add_option("--csv", o->csv_path, "write the compute-only schedule as CSV (editable, for schedule: csv:PATH)");
  cmd->add_option("--costs", o->costs,
                  "action costs of a rank's layers, e.g. F=7.2,B=10.1,I=8.2,W=2.3,comm=0.1 (ms from a "
                  "run's trace; default F=1, B=2, I=W=1); 'model': each stage's from its FLOPs; 'run:DIR': "
                  "each stage's medians from the traces of a run with logging.trace");
  cmd->add_option("--fit", o->fit_gib,
                  "the same as --set pipeline.memory_limit_gib=GIB: fail unless every rank's planned "
                  "memory fits in this many GiB (e.g. 80 for an 80 GB GPU, less what the CUDA context "
                  "and NCCL take); a cost-based partition picks the best split that fits")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--compare", o->compare,
                "also simulate every built-in schedule on this config and print step time, bubble, "
                "in-flight micro-batches and the largest rank's memory side by side");
  return [o](MpiSession& session) {
    if (session.rank() != 0) return 0;
    std::vector<std::string> overrides = o->overrides;  // what --compare reloads the config with
    if (o->fit_gib > 0.0) overrides.push_back(fmt::format("pipeline.memory_limit_gib={}", o->fit_gib));
    Config config = load_config(o->config_path, overrides);
    if (needs_layer_profile(config)) {
      std::unique_ptr<ComputeDevice> device;
      if (config.runtime.device == "cuda") {
        try {
          device = std::make_unique<ComputeDevice>(0, config.runtime.precision);
        } catch (const Error& e) {
          PPT_THROW("{}: partition profile times the layers on the config's device, and here {}; "
                    "give pipeline.layer_costs (a profiled run's config.yaml records them) or use "
                    "partition: flops", config.where("pipeline.partition"), e.what());
        }
      }
      const LayerProfile profile = profile_layers(config, GPT2Shape::from_config(config), device.get());
      config.pipeline.layer_costs = profile.layer_costs(GPT2Shape::from_config(config));
      overrides.push_back(layer_costs_override(config.pipeline.layer_costs));
      fmt::print("partition profile, measured here: {}\n", describe_layer_profile(config, profile));
    }
    const TrainingPlan plan = make_training_plan(config);
    fmt::print("{}", describe_training_plan(config, plan, o->costs));
    const MemoryPlan memory = plan_memory(config, plan);
    fmt::print("\n{}", describe_memory_plan(memory));
    std::vector<std::pair<int, int>> stage_layers;
    for (const StageRange& r : plan.partition) stage_layers.emplace_back(r.first_layer, r.end_layer);
    const std::string grad_sums = describe_grad_reduction(config, plan.shape, stage_layers);
    if (!grad_sums.empty()) fmt::print("\n{}", grad_sums);
    if (o->compare) fmt::print("\n{}", compare_schedules(o->config_path, overrides, o->costs));
    auto write = [](const std::string& path, const std::string& text) {
      std::ofstream out(path, std::ios::trunc);
      out << text;
      PPT_CHECK(out.good(), "cannot write '{}'", path);
      fmt::print("wrote {}\n", path);
    };
    if (!o->trace_path.empty()) {
      write(o->trace_path,
            schedule::to_chrome_trace(schedule::simulate(plan.lowered, plan_costs(config, plan, o->costs))));
    }
    if (!o->csv_path.empty()) write(o->csv_path, schedule::to_csv(plan.compute_only));
    if (o->fit_gib > 0.0) fmt::print("fits: every rank's planned memory is under {} GiB\n", o->fit_gib);
    return 0;
  };
}

}  // namespace pptrain::app
