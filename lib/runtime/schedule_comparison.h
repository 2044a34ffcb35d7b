// `pptrain plan --compare`: the config under every built-in schedule side by side, so the
// choice between them is a table, not a guess: simulated step time and bubble (the costs
// `pptrain plan` simulates with), the most micro-batches a stage holds, and the largest
// rank's memory plan. Pure: loads the config once per schedule, launches nothing.
#pragma once

#include <string>
#include <vector>


namespace pptrain {

// One row per schedule: gpipe, 1f1b, zb-h1 (v = 1), interleaved, interleaved-zb (the
// config's virtual_stages, or 2 when it is 1) and zbv (v = 2), plus the config's own if it
// is a CSV. A
// schedule the config cannot run gets its row with the reason (the config error's text).
// `costs` as --costs takes it (runtime/training_plan.h: plan_costs), per schedule.
std::string compare_schedules(const std::string& config_path, const std::vector<std::string>& overrides,
                              const std::string& costs);

}  // namespace pptrain
