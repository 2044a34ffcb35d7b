// A pipeline schedule as data (DESIGN.md section 4): for each rank, its actions in execution
// order. p ranks each hold v virtual stages (model chunks), S = p*v stages in all, and every
// stage sees m micro-batches. Stage 0 takes the tokens, stage S-1 computes the loss. Which
// rank holds which stage is the schedule's placement (below).
//
// A schedule is *compute-only* (F, B, I, W: what generators and users write) or *lowered*
// (with the SEND/RECV actions the executor runs, see lowering.h). Any schedule holding a
// comm action is treated as lowered.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "schedule/action.h"

namespace pptrain::schedule {

// Which rank holds stage s of S = p*v:
//   Loop  Megatron's interleaving: rank s % p, so rank r holds r, r+p, r+2p, ...
//   Vee   ZBV's (v = 2): stages 0..p-1 go down the ranks and p..2p-1 come back up, rank r
//         holding r and 2p-1-r. Rank 0 then holds the first and the last stage (both copies
//         of the tied embedding), and the hand-over from stage p-1 to p stays on rank p-1.
enum class StagePlacement { Loop, Vee };

int rank_of_stage(StagePlacement placement, int stage, int ranks);
// The placement a schedule of this name runs with: Vee for "zbv", Loop for every other
// (a csv: schedule included).
StagePlacement placement_of_schedule(std::string_view name);
std::string_view placement_name(StagePlacement placement);  // "loop", "vee"

struct Schedule {
  std::string name;                          // "1f1b", "interleaved", "csv:<path>", ...
  int ranks = 0;                             // p
  int virtual_stages = 1;                    // v: stages (chunks) per rank
  int micro_batches = 0;                     // m
  std::vector<std::vector<Action>> actions;  // [rank] -> actions in execution order
  StagePlacement placement = StagePlacement::Loop;

  int stages() const { return ranks * virtual_stages; }
  int rank_of_stage(int stage) const { return schedule::rank_of_stage(placement, stage, ranks); }

  friend bool operator==(const Schedule&, const Schedule&) = default;
};

// Throws unless p, v, m >= 1 (and p*v*m small enough for int indexing), and v = 2 for Vee.
void check_shape(int ranks, int virtual_stages, int micro_batches,
                 StagePlacement placement = StagePlacement::Loop);

// Empty when `action` may appear in rank `rank`'s list; otherwise what is wrong with it:
// stage or micro-batch out of range, a stage held by another rank, or a SEND/RECV whose
// peer stage does not exist or lives on the same rank (data is handed over locally there).
std::string action_misfit(const Schedule& schedule, int rank, const Action& action);

bool has_comm(const Schedule& schedule);

// "1f1b (p=4, v=1, m=8)": how messages name a schedule.
std::string describe(const Schedule& schedule);

}  // namespace pptrain::schedule
