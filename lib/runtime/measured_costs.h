// Per-stage action costs measured by a run: `pptrain plan --costs run:DIR` reads the
// trace-rank<N>.json files a run with logging.trace wrote into its run directory and takes,
// per stage, the median ms of its F, B, I and W events, so the simulator predicts another
// schedule or micro-batch count from this machine's real times, stage by stage.
#pragma once

#include <string>

#include "schedule/simulator.h"

namespace pptrain {

// Throws naming the directory or file when there is no trace, a stage of [0, stages) has no
// forward in it, or the traces hold other stages (another partition). A stage traced with
// whole backwards gets I = W = B / 2 (an estimate); with split ones, B = I + W.
schedule::ActionCosts measured_stage_costs(const std::string& run_dir, int stages);

}  // namespace pptrain
