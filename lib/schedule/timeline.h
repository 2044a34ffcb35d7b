// Views of a simulated timeline: a compact text grid for `pptrain plan` and a
// Chrome/Perfetto trace, so a simulated and a measured run open side by side.
#pragma once

#include <string>

#include "schedule/schedule.h"
#include "schedule/simulator.h"

namespace pptrain::schedule {

// Rows = time slots, columns = ranks. A slot is the shortest compute action's duration;
// a cell shows the compute action starting in that slot, `|` while it continues and `.`
// when the rank computes nothing (bubble or waiting on a receive). A header gives the
// makespan and bubble, a footer the bubble per rank and the peak in-flight micro-batches
// per stage. `sim` is simulate(schedule, costs) for the costs to show; with sim == nullptr
// the schedule is simulated with the default costs (F=1, B=2, I=W=1, comm 0).
std::string format_grid(const Schedule& schedule, const SimResult* sim = nullptr);

// Chrome trace JSON (chrome://tracing, ui.perfetto.dev): one pid per rank, tid 0 compute
// and tid 1 communication, one "X" event per action named by its text (`2F5`), ts and dur
// in microseconds with 1 cost unit = 1000 us.
std::string to_chrome_trace(const SimResult& sim);

}  // namespace pptrain::schedule
