#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "comm/device_assignment.h"
#include "comm/transport_factory.h"
#include "model/compute_device.h"
#include "runtime/pipeline_layout.h"
#include "runtime/trainer.h"
#if PPTRAIN_WITH_NCCL
#include "comm/nccl_transport.h"
#endif

namespace pptrain::app {

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
      plan = make_training_plan(config);
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
