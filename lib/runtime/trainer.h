// Training on one process holding the whole model: micro-batches with gradient
// accumulation, global grad-norm clipping, AdamW with a cosine schedule, validation, a
// generated sample, console lines and metrics.jsonl in the run directory.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace pptrain {

struct TrainSummary {
  int steps = 0;
  double final_loss = 0.0;
  std::optional<double> first_val_loss, final_val_loss;
  std::string run_dir;
};

// local_ranks: processes sharing this node's cores (for the thread count).
TrainSummary train_single_process(const Config& config, int local_ranks);

}  // namespace pptrain
