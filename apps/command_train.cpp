#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "comm/device_assignment.h"
#include "comm/transport_factory.h"
#include "model/compute_device.h"
#include "runtime/layer_profile.h"
#include "runtime/pipeline_layout.h"
#include "runtime/trainer.h"
#if PPTRAIN_WITH_NCCL
#include "comm/nccl_transport.h"
#endif

namespace pptrain::app {
namespace {

// partition: profile without layer_costs: every rank times the layers on its own device,
// and all partition from the mean of their times, so every rank holds the same plan. The
// costs go into the config, so the run directory's config.yaml records them.
void profile_and_plan(Config& config, TrainingPlan& plan, MpiSession& session, Transport& transport,
                      ComputeDevice* device) {
  const GPT2Shape shape = GPT2Shape::from_config(config);
  LayerProfile profile;
  session.run_on_all_ranks([&] { profile = profile_layers(config, shape, device); });
  // Outside run_on_all_ranks: every rank reaches these collectives.
  std::vector<double> times = {profile.embedding_ms, profile.block_ms, profile.head_ms};
  const GroupId world = transport.split_group(0, session.rank());
  transport.allreduce_sum(times.data(), times.size(), world, "the layer profile");
  for (double& t : times) t /= session.world_size();
  profile = {times[0], times[1], times[2]};
  config.pipeline.layer_costs = profile.layer_costs(shape);
  // The profile's models are gone; the memory plan's comparison is about training's.
  if (device != nullptr) device->memory().reset_peaks();
  session.run_on_all_ranks([&] { plan = make_training_plan(config); });
  if (session.rank() == 0) {
    spdlog::info("partition profile: {}, mean of {} rank(s)", describe_layer_profile(config, profile),
                 session.world_size());
  }
}

}  // namespace

Command add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "train a model from a YAML config");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config_path, "the YAML config file")->required();
  cmd->add_option("--set", *overrides, "override a config key: --set training.lr=3e-4 (repeatable)");
  auto save_params = std::make_shared<std::string>();
  cmd->add_option("--save-params", *save_params,
                  "after training, write each stage's parameters to DIR/stage<S>.safetensors");
  return [config_path, overrides, save_params](MpiSession& session) {
    Config config;
    TrainingPlan plan;
    std::optional<TrainingData> data;
    // Everything a bad input can break is checked on every rank before any allocation;
    // the first failing rank reports, and all exit cleanly.
    session.run_on_all_ranks([&] {
      config = load_config(*config_path, *overrides);
      check_config_for_world(config, session.world_size());
      // partition: profile partitions after the profile (below); with stand-in costs the plan
      // checks everything else (the schedule, the stage counts) now, before any allocation.
      Config checked = config;
      if (needs_layer_profile(config)) {
        checked.pipeline.layer_costs.assign(GPT2Shape::from_config(config).num_layers(), 1.0);
      }
      plan = make_training_plan(checked);
      data.emplace(open_training_data(config, plan.shape));
    });
    // The GPU (runtime.device cuda) and the transport, with the same agreement: a rank that
    // cannot get them reports, and no rank is left waiting.
    std::unique_ptr<ComputeDevice> device;
    std::unique_ptr<Transport> transport;
    std::string comm;
    session.run_on_all_ranks([&] {
      if (config.runtime.device == "cuda") {
        const GpuPlacement placement = place_on_gpu(config.runtime.comm, session.world_size());
        device = std::make_unique<ComputeDevice>(placement.device, config.runtime.precision);
      }
    });
    // Apart from the step above: make_transport runs place_on_gpu's collectives again (and
    // NCCL's), which a rank that failed above would not join.
    session.run_on_all_ranks([&] {
      transport = make_transport(config.runtime, session.world_size(),
                                 device ? device->stream() : kernels::cuda::Stream{}, &comm);
#if PPTRAIN_WITH_NCCL
      if (auto* nccl = dynamic_cast<NcclTransport*>(transport.get())) {
        const PipelineLayout layout = PipelineLayout::make(config, session.rank(), session.world_size());
        nccl->connect(layout.neighbour_world_ranks());
      }
#endif
    });
    if (session.rank() == 0 && session.world_size() > 1) {
      spdlog::info("transport: {} ({} on {})", comm, config.runtime.comm, config.runtime.device);
    }
    if (needs_layer_profile(config)) profile_and_plan(config, plan, session, *transport, device.get());
    const TrainSummary summary =
        train(config, plan, *data, *transport, session.local_size(), device.get(), *save_params);
    if (summary.first_val_loss && summary.final_val_loss) {
      spdlog::info("val loss {:.4f} -> {:.4f}; metrics in {}/metrics.jsonl", *summary.first_val_loss,
                   *summary.final_val_loss, summary.run_dir);
    }
    return 0;
  };
}

}  // namespace pptrain::app
