#include "io/model_files.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/hf_export.h"
#include "io/llmc_model.h"

namespace pptrain {

namespace fs = std::filesystem;

std::vector<ParamSpec> model_param_specs(const GPT2Shape& shape) {
  std::vector<ParamSpec> specs;
  for (int layer = 0; layer < shape.num_layers(); ++layer) {
    for (ParamSpec& p : shape.layer_params(layer)) {
      if (shape.layer_kind(layer) == LayerKind::LayerKindHead && p.name == "wte") continue;
      specs.push_back(std::move(p));
    }
  }
  return specs;
}

void check_model_shape(const GPT2Shape& s, const std::string& source) {
  PPT_CHECK(s.vocab_size > 0 && s.padded_vocab_size > 0 && s.max_seq_len > 0 && s.n_layer > 0 &&
                s.n_head > 0 && s.channels > 0,
            "{}: every model size must be positive (V {}, Vp {}, maxT {}, L {}, NH {}, C {})", source,
            s.vocab_size, s.padded_vocab_size, s.max_seq_len, s.n_layer, s.n_head, s.channels);
  PPT_CHECK(s.channels % s.n_head == 0, "{}: channels C = {} is not divisible by the head count NH = {}",
            source, s.channels, s.n_head);
  PPT_CHECK(s.padded_vocab_size >= s.vocab_size, "{}: padded vocab Vp = {} is smaller than the vocab V = {}",
            source, s.padded_vocab_size, s.vocab_size);
}

void check_model_tensors(const GPT2Shape& shape, const NamedTensors& tensors, const std::string& source) {
  for (const ParamSpec& p : model_param_specs(shape)) {
    auto it = tensors.find(p.name);
    PPT_CHECK(it != tensors.end(), "{}: the model has no tensor '{}'", source, p.name);
    const std::vector<std::int64_t> want(p.shape.begin(), p.shape.end());
    PPT_CHECK(it->second.shape == want && it->second.values.size() == p.numel(),
              "{}: tensor '{}' has shape [{}], the model's shape needs [{}]", source, p.name,
              fmt::join(it->second.shape, ", "), fmt::join(want, ", "));
  }
}

double tensor_norm(const LoadedTensor& t) {
  double sum = 0.0;
  for (float v : t.values) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

ModelFile read_checkpoint_model(const std::string& checkpoint_dir) {
  ModelFile model;
  const CheckpointManifest manifest = read_checkpoint_manifest(checkpoint_dir);
  model.shape = manifest.shape;
  check_model_shape(model.shape, checkpoint_dir);
  NamedTensors all = read_checkpoint_tensors(checkpoint_dir, manifest);
  for (const ParamSpec& p : model_param_specs(model.shape)) {
    auto it = all.find(p.name);
    if (it != all.end()) model.tensors.emplace(p.name, std::move(it->second));
  }
  check_model_tensors(model.shape, model.tensors, checkpoint_dir);
  return model;
}

ModelFile read_saved_params(const std::string& dir, const GPT2Shape& shape, const std::string& source) {
  static const std::regex stage_file(R"(stage\d+\.safetensors)");
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, stage_file)) files.push_back(entry.path());
  }
  PPT_CHECK(!ec, "cannot list '{}': {}", dir, ec.message());
  PPT_CHECK(!files.empty(), "{}: holds no stage<S>.safetensors files", dir);
  std::sort(files.begin(), files.end());
  NamedTensors all;
  for (const fs::path& f : files) {
    for (auto& [name, tensor] : read_safetensors(f.string()).tensors) {
      auto [it, inserted] = all.try_emplace(name, std::move(tensor));
      // The tied wte lies in the first and the last stage; training keeps both copies equal.
      PPT_CHECK(inserted || it->second.values == tensor.values,
                "{}: tensor '{}' appears in two stage files with different values", f.string(), name);
    }
  }
  ModelFile model;
  model.shape = shape;
  check_model_shape(shape, source);
  for (const ParamSpec& p : model_param_specs(shape)) {
    auto it = all.find(p.name);
    if (it != all.end()) model.tensors.emplace(p.name, std::move(it->second));
  }
  check_model_tensors(shape, model.tensors, dir + " (for the model of " + source + ")");
  return model;
}

ModelFile load_model_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  PPT_CHECK(fs::exists(st), "{}: no such file or directory", path);
  if (fs::is_directory(st)) {
    if (fs::exists(fs::path(path) / "manifest.json")) return read_checkpoint_model(path);
    if (fs::exists(fs::path(path) / "config.json")) return read_hf_gpt2(path);
    PPT_THROW("{}: a directory that is neither a pptrain checkpoint (manifest.json) nor a Hugging Face "
              "GPT-2 export (config.json + model.safetensors)", path);
  }
  if (fs::path(path).extension() == ".safetensors") return read_hf_gpt2(path);
  std::int32_t magic = 0;
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(&magic), sizeof(magic));
  PPT_CHECK(in.good(), "{}: too short to be a model file", path);
  PPT_CHECK(magic == kLlmcModelMagic,
            "{}: not a model file (expected an llm.c model with magic {}, a Hugging Face GPT-2 directory "
            "or .safetensors file, or a checkpoint directory; found magic {})", path, kLlmcModelMagic, magic);
  return read_llmc_model(path);
}

}  // namespace pptrain
