// `pptrain export SOURCE --format llmc|llmc-bf16|hf --out PATH`: converts a model between
// the formats pptrain reads. SOURCE is a checkpoint directory (its parameters; the AdamW
// state stays behind), a `pptrain train --save-params` directory (with --config, since
// those files do not record the head count), an llm.c model file or a Hugging Face GPT-2
// directory / model.safetensors.
#include <fmt/format.h>

#include <filesystem>
#include <regex>

#include "apps/commands.h"
#include "config/config_loader.h"
#include "core/error.h"
#include "io/hf_export.h"
#include "io/llmc_model.h"
#include "io/model_files.h"

namespace pptrain::app {

namespace {

namespace fs = std::filesystem;

bool is_saved_params_dir(const std::string& path) {
  if (!fs::is_directory(path) || fs::exists(fs::path(path) / "manifest.json") ||
      fs::exists(fs::path(path) / "config.json")) {
    return false;
  }
  static const std::regex stage_file(R"(stage\d+\.safetensors)");
  for (const auto& e : fs::directory_iterator(path)) {
    if (std::regex_match(e.path().filename().string(), stage_file)) return true;
  }
  return false;
}

}  // namespace

Command add_export_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "export", "convert a checkpoint, --save-params dir, llm.c model or HF export to llm.c or HF format");
  struct Options {
    std::string source, format, out, config_path;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("source", o->source,
                  "a checkpoint dir, a --save-params dir, an llm.c model file, or an HF dir / .safetensors")
      ->required();
  cmd->add_option("--format", o->format,
                  "llmc (version 3, fp32), llmc-bf16 (version 5, bf16) or hf (dir for GPT2LMHeadModel)")
      ->required()
      ->check(CLI::IsMember({"llmc", "llmc-bf16", "hf"}));
  cmd->add_option("--out", o->out, "the llm.c file, or the HF directory, to write")->required();
  cmd->add_option("--config", o->config_path,
                  "the run's config.yaml: gives the model shape of a --save-params dir (needed only there)");
  return [o](MpiSession& session) {
    if (session.rank() != 0) return 0;
    ModelFile model;
    if (is_saved_params_dir(o->source)) {
      PPT_CHECK(!o->config_path.empty(),
                "{}: stage<S>.safetensors files do not record the model's head count: pass --config "
                "with the run's config.yaml (runs/<name>/config.yaml)", o->source);
      const Config config = load_config(o->config_path);
      model = read_saved_params(o->source, GPT2Shape::from_config(config), o->config_path);
    } else {
      model = load_model_file(o->source);
    }
    if (o->format == "hf") {
      export_hf_gpt2(o->out, model.shape, model.tensors);
    } else {
      write_llmc_model(o->out, model.shape, model.tensors,
                       o->format == "llmc" ? kLlmcVersionFp32 : kLlmcVersionBf16);
    }
    fmt::print("wrote {} ({}): {} layers, {} heads, {} channels, vocab {} (padded {}), seq_len {}; {} parameters\n",
               o->out, o->format == "hf" ? "Hugging Face GPT-2" : o->format == "llmc" ? "llm.c v3 fp32" : "llm.c v5 bf16",
               model.shape.n_layer, model.shape.n_head, model.shape.channels, model.shape.vocab_size,
               model.shape.padded_vocab_size, model.shape.max_seq_len, model.shape.num_parameters());
    return 0;
  };
}

}  // namespace pptrain::app
