// The simulator: runs a schedule in time under per-action costs (unit, modelled or
// measured) and the runtime semantics of lowering.h, giving each rank's timeline, the
// makespan, the bubble fraction and the activations each stage holds. Costs and times are
// in arbitrary units (1 unit = 1 ms in the Chrome trace).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "schedule/schedule.h"

namespace pptrain::schedule {

struct ActionCosts {
  double forward = 1.0;          // F
  double backward = 2.0;         // B = I + W
  double backward_input = 1.0;   // I
  double backward_weight = 1.0;  // W
  // Time from posting a SEND to its data being usable by the matching RECV. Posting costs
  // the sender nothing (sends are non-blocking).
  double comm = 0.0;
  // Optional per-stage costs, S entries each (empty = the uniform costs above): e.g. the
  // partitioner's model of each stage, or measured stage times.
  std::vector<double> forward_per_stage, backward_per_stage, backward_input_per_stage,
      backward_weight_per_stage;

  // Cost of a compute action on its stage; 0 for comm actions (see `comm`).
  double cost(const Action& action) const;
};

struct TimedAction {
  Action action;
  double start = 0.0;
  double end = 0.0;  // a RECV ends when its data has arrived; a SEND takes no time
};

struct SimResult {
  std::string name;
  int ranks = 0, virtual_stages = 1, micro_batches = 0;
  std::vector<std::vector<TimedAction>> timelines;  // [rank] lowered list, in list order
  double makespan = 0.0;                            // the last action's end over all ranks
  std::vector<double> busy;                         // [rank] sum of compute costs
  std::vector<double> bubble_per_rank;              // [rank] 1 - busy / makespan
  double bubble = 0.0;                              // 1 - sum(busy) / (ranks * makespan)
  // [stage] most micro-batches held at once: forward done, backward (B, or W when split:
  // W still needs the stashed inputs) not yet done.
  std::vector<int> peak_in_flight;
};

// Uniform costs from text such as "F=7.2,B=10.1,I=8.2,W=2.3,comm=0.1" (any subset, in any
// order; the others keep their values in `base`), e.g. median action times in ms read from a
// training run's trace-rank<N>.json. Throws naming the bad entry.
ActionCosts parse_action_costs(std::string_view text, ActionCosts base = {});
// "F=1, B=2, I=1, W=1" (and ", comm=..." when it is not 0).
std::string format_action_costs(const ActionCosts& costs);

// Validates (throws pptrain::Error with the validator's grid if invalid), lowers a
// compute-only schedule, and simulates it. Each action starts when its rank reaches it;
// a comm group (lowering.h) posts its sends at that time and ends when its last receive's
// data has arrived (send time + costs.comm).
SimResult simulate(const Schedule& schedule, const ActionCosts& costs = {});

}  // namespace pptrain::schedule
