#include "io/hf_export.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/durable_file.h"

namespace pptrain {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "transformer.";

// Our per-block name -> HF's, and whether the tensor is a Conv1D weight stored (in, out).
struct BlockName {
  const char* ours;
  const char* hf;
  bool transposed;
};
constexpr BlockName kBlockNames[] = {
    {"ln1w", "ln_1.weight", false},          {"ln1b", "ln_1.bias", false},
    {"qkvw", "attn.c_attn.weight", true},    {"qkvb", "attn.c_attn.bias", false},
    {"attprojw", "attn.c_proj.weight", true}, {"attprojb", "attn.c_proj.bias", false},
    {"ln2w", "ln_2.weight", false},          {"ln2b", "ln_2.bias", false},
    {"fcw", "mlp.c_fc.weight", true},        {"fcb", "mlp.c_fc.bias", false},
    {"fcprojw", "mlp.c_proj.weight", true},  {"fcprojb", "mlp.c_proj.bias", false}};

struct HfName {
  std::string name;  // with the "transformer." prefix
  bool transposed = false;
};

HfName hf_name(const std::string& ours) {
  if (ours == "wte") return {"transformer.wte.weight"};
  if (ours == "wpe") return {"transformer.wpe.weight"};
  if (ours == "lnfw") return {"transformer.ln_f.weight"};
  if (ours == "lnfb") return {"transformer.ln_f.bias"};
  const std::size_t dot = ours.rfind('.');
  if (ours.starts_with("h.") && dot != std::string::npos) {
    for (const BlockName& b : kBlockNames) {
      if (ours.compare(dot + 1, std::string::npos, b.ours) == 0) {
        return {std::string(kPrefix) + ours.substr(0, dot + 1) + b.hf, b.transposed};
      }
    }
  }
  PPT_THROW("no Hugging Face name for parameter '{}'", ours);
}

// (rows, cols) -> (cols, rows), row-major.
std::vector<float> transpose(const std::vector<float>& in, std::int64_t rows, std::int64_t cols) {
  std::vector<float> out(in.size());
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) out[j * rows + i] = in[i * cols + j];
  }
  return out;
}

template <typename T>
T config_value(const nlohmann::json& j, const char* key, const std::string& path) {
  PPT_CHECK(j.contains(key), "{}: lacks '{}'", path, key);
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    PPT_THROW("{}: '{}' has the wrong type ({})", path, key, j.at(key).dump());
  }
}

}  // namespace

int hf_padded_vocab(int vocab_size) { return (vocab_size + 127) / 128 * 128; }

void export_hf_gpt2(const std::string& dir, const GPT2Shape& shape, const NamedTensors& tensors) {
  check_model_shape(shape, dir);
  check_model_tensors(shape, tensors, dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  PPT_CHECK(!ec, "cannot create '{}': {}", dir, ec.message());

  std::vector<std::vector<float>> transposed;  // owns the Conv1D weights until written
  transposed.reserve(4 * static_cast<std::size_t>(shape.n_layer));
  std::vector<TensorRef> refs;
  for (const ParamSpec& p : model_param_specs(shape)) {
    const HfName hf = hf_name(p.name);
    const LoadedTensor& t = tensors.at(p.name);
    std::vector<std::int64_t> dims(p.shape.begin(), p.shape.end());
    if (p.name == "wte") dims[0] = shape.vocab_size;  // the first V rows: padding never scores
    if (hf.transposed) {
      transposed.push_back(transpose(t.values, dims[0], dims[1]));
      refs.push_back({hf.name, {dims[1], dims[0]}, transposed.back().data()});
    } else {
      refs.push_back({hf.name, dims, t.values.data()});
    }
  }
  // transformers refuses safetensors whose metadata names no framework it knows.
  write_safetensors((fs::path(dir) / "model.safetensors").string(), refs, {{"format", "pt"}});

  const nlohmann::json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", shape.vocab_size},
      {"n_positions", shape.max_seq_len},
      {"n_ctx", shape.max_seq_len},
      {"n_embd", shape.channels},
      {"n_layer", shape.n_layer},
      {"n_head", shape.n_head},
      {"n_inner", nullptr},
      {"activation_function", "gelu_new"},
      {"layer_norm_epsilon", 1e-5},
      {"tie_word_embeddings", true},
      // GPT-2's <|endoftext|> (50256) where the vocab has it; transformers' defaults name it
      // even for a vocab that does not, and warn.
      {"bos_token_id", shape.vocab_size > 50256 ? nlohmann::json(50256) : nlohmann::json(nullptr)},
      {"eos_token_id", shape.vocab_size > 50256 ? nlohmann::json(50256) : nlohmann::json(nullptr)},
      {"scale_attn_weights", true},
      {"scale_attn_by_inverse_layer_idx", false},
      {"torch_dtype", "float32"},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0}};
  write_file_durably((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

ModelFile read_hf_gpt2(const std::string& path) {
  const bool is_dir = fs::is_directory(path);
  const std::string st_path = is_dir ? (fs::path(path) / "model.safetensors").string() : path;
  const fs::path parent = fs::path(st_path).parent_path();
  const std::string config_path = ((parent.empty() ? fs::path(".") : parent) / "config.json").string();

  std::ifstream in(config_path);
  PPT_CHECK(in.good(), "{}: no config.json beside it ({}): a Hugging Face GPT-2 model needs its config "
            "for the head count", st_path, config_path);
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    PPT_THROW("{}: not valid JSON ({})", config_path, e.what());
  }
  PPT_CHECK(c.is_object(), "{}: not a JSON object", config_path);
  const std::string model_type = c.value("model_type", "gpt2");
  PPT_CHECK(model_type == "gpt2", "{}: model_type '{}' is not gpt2", config_path, model_type);
  ModelFile model;
  GPT2Shape& s = model.shape;
  s.vocab_size = config_value<int>(c, "vocab_size", config_path);
  s.max_seq_len = c.contains("n_positions") ? config_value<int>(c, "n_positions", config_path)
                                            : config_value<int>(c, "n_ctx", config_path);
  s.channels = config_value<int>(c, "n_embd", config_path);
  s.n_layer = config_value<int>(c, "n_layer", config_path);
  s.n_head = config_value<int>(c, "n_head", config_path);
  s.padded_vocab_size = hf_padded_vocab(s.vocab_size);
  check_model_shape(s, config_path);
  // The options that change the function; our model implements GPT-2's defaults only.
  const double eps = c.value("layer_norm_epsilon", 1e-5);
  PPT_CHECK(std::abs(eps - 1e-5) <= 1e-12, "{}: layer_norm_epsilon {} is not supported (pptrain uses 1e-5)",
            config_path, eps);
  const std::string act = c.value("activation_function", "gelu_new");
  PPT_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
            "{}: activation_function '{}' is not supported (pptrain uses the tanh GELU, gelu_new)", config_path, act);
  PPT_CHECK(!c.contains("n_inner") || c["n_inner"].is_null() || c["n_inner"] == 4 * s.channels,
            "{}: n_inner {} is not supported (pptrain's MLP is 4 x n_embd = {})", config_path, c["n_inner"].dump(),
            4 * s.channels);
  PPT_CHECK(c.value("tie_word_embeddings", true), "{}: untied word embeddings are not supported", config_path);
  PPT_CHECK(!c.value("scale_attn_by_inverse_layer_idx", false) && c.value("scale_attn_weights", true),
            "{}: attention scaling other than 1/sqrt(head_dim) is not supported", config_path);

  SafetensorsFile file = read_safetensors(st_path);
  NamedTensors by_name;
  for (auto& [name, t] : file.tensors) {
    by_name[name.starts_with(kPrefix) ? name.substr(std::string(kPrefix).size()) : name] = std::move(t);
  }
  std::set<std::string> used;
  for (const ParamSpec& p : model_param_specs(s)) {
    const HfName hf = hf_name(p.name);
    const std::string key = hf.name.substr(std::string(kPrefix).size());
    auto it = by_name.find(key);
    PPT_CHECK(it != by_name.end(), "{}: has no tensor '{}'", st_path, hf.name);
    std::vector<std::int64_t> want(p.shape.begin(), p.shape.end());
    if (p.name == "wte") want[0] = s.vocab_size;
    if (hf.transposed) std::swap(want[0], want[1]);
    PPT_CHECK(it->second.shape == want, "{}: tensor '{}' has shape [{}], config.json implies [{}]", st_path,
              hf.name, fmt::join(it->second.shape, ", "), fmt::join(want, ", "));
    LoadedTensor t;
    t.shape.assign(p.shape.begin(), p.shape.end());
    if (hf.transposed) {
      t.values = transpose(it->second.values, want[0], want[1]);
    } else {
      t.values = std::move(it->second.values);
      t.values.resize(p.numel(), 0.0f);  // wte's padded rows: zero, as llm.c pads
    }
    model.tensors.emplace(p.name, std::move(t));
    used.insert(key);
  }
  for (const auto& [name, t] : by_name) {
    if (used.count(name)) continue;
    if (name == "lm_head.weight") {
      const std::vector<float>& wte = model.tensors.at("wte").values;
      PPT_CHECK(t.values.size() <= wte.size() && std::equal(t.values.begin(), t.values.end(), wte.begin()),
                "{}: lm_head.weight differs from wte: untied heads are not supported", st_path);
      continue;
    }
    // Old exports carry the causal-mask buffers; they are constants, not parameters.
    if (name.starts_with("h.") && (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias"))) continue;
    PPT_THROW("{}: unexpected tensor '{}' (not a GPT-2 parameter of this config)", st_path, name);
  }
  return model;
}

}  // namespace pptrain
