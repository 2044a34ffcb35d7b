#include <spdlog/spdlog.h>

#include "apps/commands.h"
#include "data/prepare.h"

namespace pptrain::app {

Command add_prepare_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "prepare", "turn text files into byte-level (vocab 256) train/val token shards");
  struct Options {
    std::vector<std::string> inputs;
    std::string out_dir;
    double val_fraction = 0.05;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("inputs", o->inputs, "UTF-8 text files, read in order")->required();
  cmd->add_option("--out", o->out_dir, "output directory for train_*.bin and val_*.bin")->required();
  cmd->add_option("--val-fraction", o->val_fraction, "share of 16 KiB blocks sent to val (0 = none)")
      ->capture_default_str();
  return [o](MpiSession& session) {
    if (session.rank() != 0) return 0;
    const PrepareResult r = prepare_text_shards(o->inputs, o->out_dir, o->val_fraction);
    spdlog::info("prepared {} bytes: {} train tokens in {} shard(s), {} val tokens in {} shard(s), in {}",
                 r.input_bytes, r.train_tokens, r.train_files.size(), r.val_tokens,
                 r.val_files.size(), o->out_dir);
    return 0;
  };
}

}  // namespace pptrain::app
