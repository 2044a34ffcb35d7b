// A pipeline schedule as data (DESIGN.md section 4): for each rank, its actions in execution
// order. p ranks each hold v virtual stages (model chunks), S = p*v stages in all, and every
// stage sees m micro-batches. Stage s lives on rank s % p (Megatron's loop placement: rank r
// holds stages r, r+p, r+2p, ...). Stage 0 takes the tokens, stage S-1 computes the loss.
//
// A schedule is *compute-only* (F, B, I, W: what generators and users write) or *lowered*
// (with the SEND/RECV actions the executor runs, see lowering.h). Any schedule holding a
// comm action is treated as lowered.
#pragma once

#include <string>
#include <vector>

#include "schedule/action.h"

namespace pptrain::schedule {

struct Schedule {
  std::string name;                          // "1f1b", "interleaved", "csv:<path>", ...
  int ranks = 0;                             // p
  int virtual_stages = 1;                    // v: stages (chunks) per rank
  int micro_batches = 0;                     // m
  std::vector<std::vector<Action>> actions;  // [rank] -> actions in execution order

  int stages() const { return ranks * virtual_stages; }
  int rank_of_stage(int stage) const { return stage % ranks; }

  friend bool operator==(const Schedule&, const Schedule&) = default;
};

// Throws unless p, v, m >= 1 (and p*v*m small enough for int indexing).
void check_shape(int ranks, int virtual_stages, int micro_batches);

// Empty when `action` may appear in rank `rank`'s list; otherwise what is wrong with it:
// stage or micro-batch out of range, a stage held by another rank, or a SEND/RECV whose
// peer stage does not exist or lives on the same rank (data is handed over locally there).
std::string action_misfit(const Schedule& schedule, int rank, const Action& action);

bool has_comm(const Schedule& schedule);

// "1f1b (p=4, v=1, m=8)": how messages name a schedule.
std::string describe(const Schedule& schedule);

}  // namespace pptrain::schedule
