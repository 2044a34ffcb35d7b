#include "runtime/checkpointing.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "config/config_loader.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/durable_file.h"
#include "io/run_directory.h"

namespace pptrain {

namespace fs = std::filesystem;

namespace {

bool same_shape(const GPT2Shape& a, const GPT2Shape& b) {
  return a.vocab_size == b.vocab_size && a.padded_vocab_size == b.padded_vocab_size &&
         a.max_seq_len == b.max_seq_len && a.n_layer == b.n_layer && a.n_head == b.n_head &&
         a.channels == b.channels;
}

std::string describe_shape(const GPT2Shape& s) {
  return fmt::format("{} layers, {} heads, {} channels, vocab {} (padded {}), seq {}", s.n_layer,
                     s.n_head, s.channels, s.vocab_size, s.padded_vocab_size, s.max_seq_len);
}

// Deletes a checkpoint so that a kill part-way never leaves a half-deleted step_<N>: it is
// first renamed out of the step_ namespace (atomic), then removed.
void remove_checkpoint(const fs::path& dir) {
  std::error_code ec;
  const fs::path trash = dir.parent_path() / (".trash-" + dir.filename().string());
  fs::remove_all(trash, ec);
  fs::rename(dir, trash, ec);
  if (!ec) fs::remove_all(trash, ec);
}

// Removes all complete checkpoints but the newest `keep`, and leftovers of interrupted saves
// and deletions.
void prune_checkpoints(const std::string& root, int keep, const std::string& just_written) {
  std::vector<std::string> complete;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-step_", 0) == 0 || name.rfind(".trash-step_", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    } else if (name.rfind("step_", 0) == 0 && entry.is_directory()) {
      complete.push_back(entry.path().string());
    }
  }
  std::sort(complete.begin(), complete.end());  // zero-padded step numbers sort by step
  for (std::size_t i = 0; i + keep < complete.size(); ++i) {
    if (complete[i] != just_written) remove_checkpoint(complete[i]);
  }
}

}  // namespace

std::string checkpoint_root(const Config& config) {
  if (!config.checkpoint.dir.empty()) return config.checkpoint.dir;
  return (fs::path(run_directory_path(config)) / "checkpoints").string();
}

std::optional<std::string> checkpoint_to_resume(const Config& config) {
  const std::string& resume = config.checkpoint.resume;
  if (resume == "none") return std::nullopt;
  if (resume == "auto") return find_latest_checkpoint(checkpoint_root(config));
  std::error_code ec;
  PPT_CHECK(fs::is_directory(resume, ec),
            "{}: no checkpoint directory '{}' (checkpoint.resume takes auto: the newest under "
            "checkpoint.dir, none, or a checkpoint's directory)",
            config.where("checkpoint.resume"), resume);
  return resume;
}

std::string save_checkpoint(PipelineExecutor& executor, const Config& config, const TrainingPlan& plan,
                            const PipelineLayout& layout, Transport& transport, int steps_done,
                            std::int64_t train_sequences) {
  const std::string root = checkpoint_root(config);
  const std::string name = checkpoint_dir_name(steps_done);
  const std::string tmp = (fs::path(root) / (".tmp-" + name)).string();
  const std::string final_dir = (fs::path(root) / name).string();
  std::error_code ec;
  if (transport.rank() == 0) {
    fs::remove_all(tmp, ec);  // a save that a kill interrupted
    fs::create_directories(tmp, ec);
    PPT_CHECK(!ec, "{}: cannot create '{}': {}", config.where("checkpoint.dir"), tmp, ec.message());
  }
  executor.barrier("the checkpoint start barrier");
  if (layout.dp_rank == 0) {  // replicas hold identical state
    for (int i = 0; i < executor.num_chunks(); ++i) {
      const NamedTensors state = executor.chunk_state(i);
      std::vector<TensorRef> refs;
      for (const auto& [tensor_name, t] : state) refs.push_back({tensor_name, t.shape, t.values.data()});
      write_safetensors((fs::path(tmp) / fmt::format("stage{}.safetensors", executor.chunk_stage(i))).string(),
                        refs, {{"step", std::to_string(steps_done)}});
    }
  }
  executor.barrier("the checkpoint files barrier");
  if (transport.rank() == 0) {
    CheckpointManifest m;
    m.step = steps_done;
    m.seed = config.training.seed;
    m.train_sequences = train_sequences;
    m.shape = plan.shape;
    m.config_yaml = config_to_yaml(config);
    for (std::size_t s = 0; s < plan.partition.size(); ++s) {
      CheckpointStageFile f;
      f.stage = static_cast<int>(s);
      f.first_layer = plan.partition[s].first_layer;
      f.end_layer = plan.partition[s].end_layer;
      f.file = fmt::format("stage{}.safetensors", s);
      const std::string path = (fs::path(tmp) / f.file).string();
      f.bytes = fs::file_size(path, ec);
      PPT_CHECK(!ec, "checkpoint file '{}' was not written: {}", path, ec.message());
      f.crc32 = crc32_of_file(path);
      m.stages.push_back(f);
    }
    write_checkpoint_manifest(tmp, m);
    fsync_path(tmp);
    if (fs::exists(final_dir, ec)) remove_checkpoint(final_dir);  // the same step saved again
    rename_durably(tmp, final_dir);
    prune_checkpoints(root, config.checkpoint.keep, final_dir);
  }
  executor.barrier("the checkpoint end barrier");
  return final_dir;
}

CheckpointManifest load_checkpoint(PipelineExecutor& executor, const std::string& dir, const TrainingPlan& plan) {
  const CheckpointManifest m = read_checkpoint_manifest(dir);
  PPT_CHECK(same_shape(m.shape, plan.shape),
            "{}: checkpoint of another model ({}); the config describes {}", dir,
            describe_shape(m.shape), describe_shape(plan.shape));
  // Read only the files holding layers of this rank's chunks.
  auto wanted = [&](const CheckpointStageFile& f) {
    for (int i = 0; i < executor.num_chunks(); ++i) {
      const StageModel& model = executor.chunk_model(i);
      const bool overlaps = f.first_layer < model.end_layer() && model.first_layer() < f.end_layer;
      // The tied wte also lives in the head's file.
      const bool tied = model.has_embedding() && f.end_layer == plan.shape.num_layers();
      const bool tied_head = model.has_head() && f.first_layer == 0;
      if (overlaps || tied || tied_head) return true;
    }
    return false;
  };
  executor.load_state(read_checkpoint_tensors(dir, m, wanted), dir);
  return m;
}

}  // namespace pptrain
