// The order in which a rank's executor meets its lowered action list (runtime/
// pipeline_executor.cpp), in one place so the memory plan (runtime/memory_plan.cpp) walks
// exactly what the executor runs: each comm action is posted at its place in the list, except
// that the receives of the comm group right after a compute action are posted just before
// that compute runs, so their data can arrive while it computes; each action is met once.
#pragma once

#include <cstddef>
#include <vector>

#include "schedule/action.h"

namespace pptrain::schedule {

// post(action) for every comm action, compute(action) for every compute action, in the
// executor's order.
template <typename Post, typename Compute>
void for_each_in_posting_order(const std::vector<Action>& list, Post&& post, Compute&& compute) {
  std::vector<bool> posted(list.size(), false);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Action& a = list[i];
    if (is_comm(a.kind)) {
      if (!posted[i]) post(a);
      posted[i] = true;
      continue;
    }
    for (std::size_t j = i + 1; j < list.size() && is_comm(list[j].kind); ++j) {
      if (is_recv(list[j].kind) && !posted[j]) {
        post(list[j]);
        posted[j] = true;
      }
    }
    compute(a);
  }
}

}  // namespace pptrain::schedule
