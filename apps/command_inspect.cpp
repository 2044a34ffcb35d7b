// `pptrain inspect PATH [--tensors]`: what a file or directory is and what it holds, for
// every format pptrain reads or writes: checkpoints (one, or a directory of them), llm.c
// model files, Hugging Face GPT-2 exports, `--save-params` directories, any safetensors
// file, and llm.c token shards. Unknown or corrupt input is one error line (from the
// readers, which name the file and the fault).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

#include "apps/commands.h"
#include "core/error.h"
#include "data/token_shard.h"
#include "io/checkpoint.h"
#include "io/hf_export.h"
#include "io/llmc_model.h"
#include "io/model_files.h"

namespace pptrain::app {

namespace {

namespace fs = std::filesystem;

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string describe_shape(const GPT2Shape& s) {
  return fmt::format("GPT-2, vocab {} (padded {}), seq_len {}, {} layers, {} heads, {} channels: {} parameters "
                     "({:.2f}M)", s.vocab_size, s.padded_vocab_size, s.max_seq_len, s.n_layer, s.n_head,
                     s.channels, s.num_parameters(), s.num_parameters() / 1e6);
}

// Tensors in the given order. Brief: the per-layer tensors ("h.3.qkvw", "adam_m.h.3.qkvw")
// become one row per kind ("h.*.qkvw", L x its shape, the norm over all layers together).
void print_tensors(const std::vector<std::pair<std::string, const LoadedTensor*>>& tensors, bool all) {
  static const std::regex layer(R"((^|\.)h\.\d+\.)");
  struct Row {
    std::string name, shape;
    double sum_sq = 0.0;
    int count = 0;
    std::size_t numel = 0;
  };
  std::vector<Row> rows;
  for (const auto& [name, t] : tensors) {
    const std::string key = all ? name : std::regex_replace(name, layer, "$1h.*.");
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.name == key; });
    if (it == rows.end()) {
      rows.push_back({key, fmt::format("[{}]", fmt::join(t->shape, ", "))});
      it = rows.end() - 1;
    }
    const double norm = tensor_norm(*t);
    it->sum_sq += norm * norm;
    it->count += 1;
    it->numel += t->values.size();
  }
  std::size_t width = 6;
  for (const Row& r : rows) width = std::max(width, r.name.size());
  fmt::print("  {:<{}}  {:<22} {:>12}  {:>12}\n", "tensor", width, "shape", "values", "norm");
  for (const Row& r : rows) {
    const std::string shape = r.count > 1 ? fmt::format("{} x {}", r.count, r.shape) : r.shape;
    fmt::print("  {:<{}}  {:<22} {:>12}  {:>12.6g}\n", r.name, width, shape, r.numel, std::sqrt(r.sum_sq));
  }
  if (!all && rows.size() < tensors.size()) {
    fmt::print("  ({} tensors; per-layer ones grouped as h.*, --tensors lists each)\n", tensors.size());
  }
}

// Sorts tensors of a parameter table (optionally "adam_m." / "adam_v." prefixed) into model
// order, llm.c's; other names follow alphabetically.
std::vector<std::pair<std::string, const LoadedTensor*>> in_model_order(const NamedTensors& tensors) {
  static const std::regex layer(R"(h\.(\d+)\.(\w+))");
  GPT2Shape one_block;
  one_block.n_layer = one_block.n_head = one_block.channels = 1;
  std::vector<std::string> block_names;
  for (const ParamSpec& p : one_block.layer_params(1)) block_names.push_back(p.name.substr(4));  // "h.0."
  auto order = [&](const std::string& full) {
    int group = 0;
    std::string name = full;
    if (name.starts_with("adam_m.") || name.starts_with("adam_v.")) {
      group = name[5] == 'm' ? 1 : 2;
      name = name.substr(7);
    }
    std::smatch m;
    if (name == "wte" || name == "wpe") return std::tuple(group, 0, name == "wte" ? 0 : 1, std::string());
    if (name == "lnfw" || name == "lnfb") return std::tuple(group, 1 << 30, name == "lnfw" ? 0 : 1, std::string());
    if (std::regex_match(name, m, layer)) {
      const auto it = std::find(block_names.begin(), block_names.end(), m[2].str());
      if (it != block_names.end()) {
        return std::tuple(group, 1 + std::stoi(m[1]), static_cast<int>(it - block_names.begin()), std::string());
      }
    }
    return std::tuple(3, 0, 0, full);
  };
  std::vector<std::pair<std::string, const LoadedTensor*>> ordered;
  for (const auto& [name, t] : tensors) ordered.emplace_back(name, &t);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [&](const auto& a, const auto& b) { return order(a.first) < order(b.first); });
  return ordered;
}

void print_model(const ModelFile& model, bool all) {
  fmt::print("model: {}\n", describe_shape(model.shape));
  print_tensors(in_model_order(model.tensors), all);
}

std::optional<int> step_of(const std::string& name) {
  static const std::regex step(R"((?:\.tmp-)?step_(\d+))");
  std::smatch m;
  if (!std::regex_match(name, m, step)) return std::nullopt;
  return std::stoi(m[1]);
}

void inspect_checkpoint(const std::string& dir, bool all) {
  const CheckpointManifest m = read_checkpoint_manifest(dir);
  fmt::print("pptrain checkpoint {}: step {}, seed {}\n", dir, m.step, m.seed);
  fmt::print("model: {}\n", describe_shape(m.shape));
  fmt::print("layout: {} stage file(s)\n", m.stages.size());
  std::string first_fault;
  for (const CheckpointStageFile& f : m.stages) {
    const std::string path = (fs::path(dir) / f.file).string();
    std::error_code ec;
    const std::uint64_t size = fs::file_size(path, ec);
    std::string check;
    if (ec) {
      check = "MISSING";
      if (first_fault.empty()) first_fault = fmt::format("{}: missing ({})", path, ec.message());
    } else if (size != f.bytes) {
      check = fmt::format("SIZE MISMATCH (manifest {})", f.bytes);
      if (first_fault.empty()) {
        first_fault = fmt::format("{}: {} bytes, the manifest says {} (truncated or replaced)", path, size, f.bytes);
      }
    } else {
      const std::uint32_t crc = crc32_of_file(path);
      check = crc == f.crc32 ? fmt::format("crc32 {:08x} ok", crc)
                             : fmt::format("CRC MISMATCH: {:08x}, manifest {:08x}", crc, f.crc32);
      if (crc != f.crc32 && first_fault.empty()) {
        first_fault = fmt::format("{}: CRC-32 {:08x} does not match the manifest's {:08x} (the file is corrupt)",
                                  path, crc, f.crc32);
      }
    }
    const std::string layers = f.end_layer - f.first_layer == 1
                                   ? m.shape.layer_name(f.first_layer)
                                   : fmt::format("{} .. {}", m.shape.layer_name(f.first_layer),
                                                 m.shape.layer_name(f.end_layer - 1));
    fmt::print("  stage {}  layers [{}, {}) {:<22} {:<22} {:>10}  {}\n", f.stage, f.first_layer, f.end_layer,
               layers, f.file, ec ? std::string("-") : format_bytes(size), check);
  }
  PPT_CHECK(first_fault.empty(), "{}", first_fault);
  // The files passed their CRC check above; read them without checking again.
  NamedTensors tensors;
  for (const CheckpointStageFile& f : m.stages) {
    for (auto& [name, t] : read_safetensors((fs::path(dir) / f.file).string()).tensors) {
      if (all || !name.starts_with("adam_")) tensors.try_emplace(name, std::move(t));
    }
  }
  print_tensors(in_model_order(tensors), all);
  if (!all) fmt::print("  (parameters only; --tensors adds the AdamW state adam_m.*, adam_v.*)\n");
}

void inspect_checkpoint_list(const std::string& dir, const std::vector<fs::path>& entries) {
  std::vector<std::pair<int, fs::path>> sorted;
  for (const fs::path& e : entries) sorted.emplace_back(*step_of(e.filename().string()), e);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });
  const std::optional<std::string> latest = find_latest_checkpoint(dir);
  fmt::print("checkpoint directory {}: {} entr{} (newest first)\n", dir, sorted.size(),
             sorted.size() == 1 ? "y" : "ies");
  for (const auto& [step, path] : sorted) {
    const std::string name = path.filename().string();
    if (name.starts_with(".tmp-")) {
      fmt::print("  {:<22} incomplete: a write that did not finish (never resumed from)\n", name);
      continue;
    }
    try {
      const CheckpointManifest m = read_checkpoint_manifest(path.string());
      std::uint64_t bytes = 0;
      std::string sizes = "sizes ok";
      for (const CheckpointStageFile& f : m.stages) {
        std::error_code ec;
        const std::uint64_t size = fs::file_size(path / f.file, ec);
        if (ec || size != f.bytes) sizes = fmt::format("{} {}", f.file, ec ? "MISSING" : "SIZE MISMATCH");
        bytes += ec ? 0 : size;
      }
      const bool is_latest = latest && fs::equivalent(*latest, path);
      fmt::print("  {:<22} step {:>8}  {} file(s) {:>10}  {}{}\n", name, m.step, m.stages.size(),
                 format_bytes(bytes), sizes, is_latest ? "  (latest: resume starts here)" : "");
    } catch (const Error& e) {
      fmt::print("  {:<22} unreadable: {}\n", name, e.what());
    }
  }
  fmt::print("(`pptrain inspect {}/<name>` checks one checkpoint's CRCs)\n", dir);
}

void inspect_saved_params(const std::string& dir, const std::vector<fs::path>& files, bool all) {
  fmt::print("parameter files of `pptrain train --save-params` in {} ({} stage file(s)):\n", dir, files.size());
  NamedTensors tensors;
  for (const fs::path& f : files) {
    SafetensorsFile file = read_safetensors(f.string());
    const auto meta = [&](const char* key) {
      auto it = file.metadata.find(key);
      return it == file.metadata.end() ? std::string("?") : it->second;
    };
    fmt::print("  {:<22} layers [{}, {})  {} tensors {:>10}\n", f.filename().string(), meta("first_layer"),
               meta("end_layer"), file.tensors.size(), format_bytes(fs::file_size(f)));
    for (auto& [name, t] : file.tensors) tensors.try_emplace(name, std::move(t));
  }
  print_tensors(in_model_order(tensors), all);
  fmt::print("(the files do not record n_head: `pptrain export {} --config RUN/config.yaml` converts them)\n", dir);
}

void inspect_directory(const std::string& dir, bool all) {
  if (fs::exists(fs::path(dir) / "manifest.json")) return inspect_checkpoint(dir, all);
  std::vector<fs::path> steps, stages;
  static const std::regex stage_file(R"(stage\d+\.safetensors)");
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && step_of(name)) steps.push_back(e.path());
    if (std::regex_match(name, stage_file)) stages.push_back(e.path());
  }
  if (!steps.empty()) return inspect_checkpoint_list(dir, steps);
  if (fs::exists(fs::path(dir) / "config.json")) {
    const ModelFile model = read_hf_gpt2(dir);
    fmt::print("Hugging Face GPT-2 export {}: model.safetensors {}, config.json\n", dir,
               format_bytes(fs::file_size(fs::path(dir) / "model.safetensors")));
    return print_model(model, all);
  }
  std::sort(stages.begin(), stages.end());
  if (!stages.empty()) return inspect_saved_params(dir, stages, all);
  PPT_THROW("{}: a directory with no checkpoint (manifest.json or step_<N>/), Hugging Face export "
            "(config.json + model.safetensors) or stage<S>.safetensors parameter files", dir);
}

void inspect_safetensors(const std::string& path, bool all) {
  const fs::path config = fs::path(path).parent_path() / "config.json";
  if (fs::exists(config)) {
    const ModelFile model = read_hf_gpt2(path);
    fmt::print("Hugging Face GPT-2 model {} ({}; config from {})\n", path, format_bytes(fs::file_size(path)),
               config.string());
    return print_model(model, all);
  }
  const SafetensorsFile file = read_safetensors(path);
  fmt::print("safetensors file {}: {} tensors, {}{}\n", path, file.tensors.size(), format_bytes(fs::file_size(path)),
             file.metadata.empty() ? std::string() : fmt::format(", metadata {}", file.metadata));
  print_tensors(in_model_order(file.tensors), all);
}

void inspect_shard(const std::string& path) {
  const TokenShard shard = TokenShard::open(path, 65536);  // any uint16 token is valid here
  const auto tokens = shard.tokens();
  fmt::print("llm.c token shard {}: version {}, {} tokens, {}\n", path, kShardVersion, tokens.size(),
             format_bytes(fs::file_size(path)));
  if (tokens.empty()) return;
  const auto [lo, hi] = std::minmax_element(tokens.begin(), tokens.end());
  fmt::print("tokens: min {}, max {}: fits a vocab of {} or more{}\n", *lo, *hi, *hi + 1,
             *hi < 256 ? " (byte-level, as `pptrain prepare` writes)" : "");
}

void inspect_file(const std::string& path, bool all) {
  std::ifstream in(path, std::ios::binary);
  PPT_CHECK(in.good(), "{}: cannot read", path);
  char head[9] = {};
  in.read(head, 9);
  const std::streamsize n = in.gcount();
  PPT_CHECK(n > 0, "{}: empty file (0 bytes)", path);
  std::int32_t magic = 0;
  std::memcpy(&magic, head, sizeof(magic));
  if (n >= 4 && magic == kLlmcModelMagic) {
    const ModelFile model = read_llmc_model(path);
    fmt::print("llm.c model file {}: version {} ({} parameters), {}\n", path, model.version,
               model.version == kLlmcVersionBf16 ? "bf16" : "fp32", format_bytes(fs::file_size(path)));
    return print_model(model, all);
  }
  if (n >= 4 && magic == kShardMagic) return inspect_shard(path);
  // safetensors: an 8-byte header length, then the JSON header.
  if (fs::path(path).extension() == ".safetensors" || (n == 9 && head[8] == '{')) {
    return inspect_safetensors(path, all);
  }
  PPT_THROW("{}: unknown format ({} bytes; its first int32 is {}, not the magic of an llm.c model file ({}) or "
            "token shard ({}), and it is not safetensors)", path, fs::file_size(path), n >= 4 ? magic : 0,
            kLlmcModelMagic, kShardMagic);
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "inspect", "say what a checkpoint, model file, HF export, parameter dir or token shard holds");
  struct Options {
    std::string path;
    bool tensors = false;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("path", o->path, "a file or directory")->required();
  cmd->add_flag("--tensors", o->tensors, "list every tensor (default: per-layer tensors grouped as h.*)");
  return [o](MpiSession& session) {
    if (session.rank() != 0) return 0;
    std::error_code ec;
    const fs::file_status st = fs::status(o->path, ec);
    PPT_CHECK(fs::exists(st), "{}: no such file or directory", o->path);
    if (fs::is_directory(st)) {
      inspect_directory(o->path, o->tensors);
    } else {
      inspect_file(o->path, o->tensors);
    }
    return 0;
  };
}

}  // namespace pptrain::app
