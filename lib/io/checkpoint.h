// Checkpoints (DESIGN.md section 9). A checkpoint is a directory
//   <checkpoint.dir>/step_<NNNNNNNN>/
//     stage<S>.safetensors   the stage's parameters under their model names, and its AdamW
//                            state as "adam_m.<name>" and "adam_v.<name>" (fp32; on the CPU
//                            the parameters are the fp32 master weights)
//     manifest.json          format, step, seed, model shape, the resolved config, the
//                            layer range of every stage and each file's size and CRC-32
// Ranks write their stage files into ".tmp-step_<N>", then rank 0 writes the manifest,
// fsyncs and renames the directory: a directory named step_<N> is complete, whatever moment
// a kill struck. Tensors are stored per layer by name, so a run may resume on another
// pipeline layout: every stage picks its tensors from all files.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/named_tensors.h"
#include "model/gpt2_shape.h"

namespace pptrain {

struct CheckpointStageFile {
  int stage = 0;
  int first_layer = 0, end_layer = 0;
  std::string file;  // name inside the checkpoint directory
  std::uint64_t bytes = 0;
  std::uint32_t crc32 = 0;
};

struct CheckpointManifest {
  int step = 0;                 // optimizer steps done
  std::uint64_t seed = 0;       // training.seed (batches and init derive from it and the step)
  // Training sequences read so far: where the epoch sampler (TokenDataset::fill_train_batch)
  // goes on, whatever global batch the resumed run has. -1: not recorded (older checkpoints;
  // the resumed run then assumes step x its own sequences per step).
  std::int64_t train_sequences = -1;
  GPT2Shape shape;
  std::string config_yaml;      // the resolved config of the run that wrote it
  std::vector<CheckpointStageFile> stages;
};

inline constexpr const char* kCheckpointFormat = "pptrain-checkpoint";
inline constexpr int kCheckpointVersion = 1;

// Reads and checks manifest.json (format, version, fields); errors name the file.
CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir);

// Every tensor of every stage file, after checking each file's size and CRC-32 against the
// manifest (a truncated or bit-flipped file is an error naming it). Parameters by name,
// optimizer state as "adam_m.<name>" / "adam_v.<name>"; the tied wte appears once.
// `wanted` (optional) picks the stage files to read, e.g. those overlapping a rank's layers.
NamedTensors read_checkpoint_tensors(const std::string& checkpoint_dir, const CheckpointManifest& manifest,
                                     const std::function<bool(const CheckpointStageFile&)>& wanted = {});

// The newest complete checkpoint (step_<N> with a readable manifest) under dir, if any.
std::optional<std::string> find_latest_checkpoint(const std::string& dir);

std::uint32_t crc32_of_file(const std::string& path);

// "step_00000100": the directory name of a complete checkpoint.
std::string checkpoint_dir_name(int step);

// Writes manifest.json into checkpoint_dir, durably (fsynced).
void write_checkpoint_manifest(const std::string& checkpoint_dir, const CheckpointManifest& manifest);

}  // namespace pptrain
