#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "runtime/trainer.h"

namespace pptrain::app {

Command add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "train a model from a YAML config");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config_path, "the YAML config file")->required();
  cmd->add_option("--set", *overrides, "override a config key: --set training.lr=3e-4 (repeatable)");
  return [config_path, overrides](MpiSession& session) {
    Config config;
    session.run_on_all_ranks([&] {
      config = load_config(*config_path, *overrides);
      check_config_for_world(config, session.world_size());
    });
    const TrainSummary summary = train_single_process(config, session.local_size());
    if (summary.final_val_loss) {
      spdlog::info("val loss {:.4f} -> {:.4f}; metrics in {}/metrics.jsonl",
                   summary.first_val_loss.value_or(0.0), *summary.final_val_loss, summary.run_dir);
    }
    return 0;
  };
}

}  // namespace pptrain::app
