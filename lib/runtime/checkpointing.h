// Saving and resuming training state with the checkpoint format of lib/io/checkpoint.h.
// Both are collective: every rank of the job calls them at the same point.
#pragma once

#include <optional>
#include <string>

#include "comm/transport.h"
#include "config/config.h"
#include "io/checkpoint.h"
#include "runtime/pipeline_executor.h"
#include "runtime/training_plan.h"

namespace pptrain {

// checkpoint.dir, or <run dir>/checkpoints.
std::string checkpoint_root(const Config& config);

// The checkpoint `checkpoint.resume` asks for: none -> nothing; auto -> the newest complete
// one under checkpoint_root (nothing if there is none yet); a path -> that checkpoint
// directory, which must exist. Errors name the config key.
std::optional<std::string> checkpoint_to_resume(const Config& config);

// Writes the state after `steps_done` optimizer steps: the first replica's ranks write their
// stage files into a temporary directory, rank 0 adds the manifest (sizes, CRC-32s), renames
// it to step_<N> and removes all but the newest checkpoint.keep. Returns the directory.
// train_sequences: the training sequences read by then (the data sampler's position).
std::string save_checkpoint(PipelineExecutor& executor, const Config& config, const TrainingPlan& plan,
                            const PipelineLayout& layout, Transport& transport, int steps_done,
                            std::int64_t train_sequences);

// Loads `dir` into the executor (any pipeline layout may have written it) and returns its
// manifest (steps done, training sequences read). The model shape must match the config's.
CheckpointManifest load_checkpoint(PipelineExecutor& executor, const std::string& dir, const TrainingPlan& plan);

}  // namespace pptrain
