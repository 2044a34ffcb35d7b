// The validator: checks a schedule before anything runs (every rank calls it at start-up).
// It checks the structure (each action on its stage's rank; every (stage, micro-batch) has
// exactly one F and exactly one B, or one I and one W; F before B/I before W; every SEND
// has exactly one RECV and vice versa), then runs all ranks together in lockstep steps under
// the runtime semantics of lowering.h to prove there is no deadlock. A compute-only schedule
// is lowered first, so what is checked is exactly what the executor will run.
#pragma once

#include <string>

#include "schedule/schedule.h"

namespace pptrain::schedule {

struct ValidationResult {
  bool ok = true;
  // What is wrong, naming ranks, actions and list indices (0-based); empty when ok. For a
  // deadlock: each stuck rank, the action it waits at and what that action waits for.
  std::string message;
  // Deadlock only: the step x rank grid (rows = lockstep steps, columns = ranks, a cell =
  // the action run in that step, blank while waiting) of the lowered schedule, ending with
  // the failing step marked `>>`, where each stuck rank shows [the action it waits at].
  std::string grid;
  int failing_step = -1;  // deadlock only
  int steps = 0;          // when ok: lockstep steps the lowered schedule takes
};

ValidationResult validate(const Schedule& schedule);

// Throws pptrain::Error with the message and the grid unless validate() is ok.
void validate_or_throw(const Schedule& schedule);

}  // namespace pptrain::schedule
