#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "comm/mpi_transport.h"
#include "runtime/trainer.h"

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
    std::unique_ptr<Transport> transport;
    if (session.world_size() == 1) {
      transport = std::make_unique<SingleProcessTransport>();
    } else {
      transport = std::make_unique<MpiTransport>(config.runtime.timeout_s);
    }
    const TrainSummary summary =
        train(config, plan, *data, *transport, session.local_size(), nullptr, *save_params);
    if (summary.first_val_loss && summary.final_val_loss) {
      spdlog::info("val loss {:.4f} -> {:.4f}; metrics in {}/metrics.jsonl", *summary.first_val_loss,
                   *summary.final_val_loss, summary.run_dir);
    }
    return 0;
  };
}

}  // namespace pptrain::app
