// Training on one or many ranks: every rank runs this with its own transport. The
// pipeline executor does the steps; this file adds the data, validation, the generated
// sample, console lines, metrics.jsonl and the per-rank traces in the run directory.
#pragma once

#include <optional>
#include <string>

#include "comm/transport.h"
#include "config/config.h"
#include "data/token_dataset.h"
#include "model/compute_device.h"
#include "runtime/training_plan.h"

namespace pptrain {

struct TrainingData {
  TokenDataset train;
  std::optional<TokenDataset> val;
};

// Opens and checks the shards of data.train and data.val (errors name the config key).
TrainingData open_training_data(const Config& config, const GPT2Shape& shape);

struct TrainSummary {
  int steps = 0;
  double final_loss = 0.0;
  std::optional<double> first_val_loss, final_val_loss;
  std::string run_dir;
  bool stopped_by_signal = false;  // SIGTERM/SIGUSR1: a checkpoint was written, resume later
};

// local_ranks: processes sharing this node's cores (for the thread count). device: the GPU
// this rank computes on (runtime.device: cuda; the transport then moves device memory), or
// nullptr for the CPU. A non-empty save_params_dir receives stage<S>.safetensors from each
// stage after the last step.
TrainSummary train(const Config& config, const TrainingPlan& plan, const TrainingData& data,
                   Transport& transport, int local_ranks, ComputeDevice* device = nullptr,
                   const std::string& save_params_dir = "");

}  // namespace pptrain
