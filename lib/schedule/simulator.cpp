#include "schedule/simulator.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"
#include "schedule/lowering.h"
#include "schedule/validator.h"

namespace pptrain::schedule {
namespace {

double per_stage_or(const std::vector<double>& per_stage, double uniform, int stage) {
  return per_stage.empty() ? uniform : per_stage[stage];
}

void check_costs(const ActionCosts& c, int stages) {
  auto check = [&](const std::vector<double>& v, const char* what) {
    PPT_CHECK(v.empty() || static_cast<int>(v.size()) == stages,
              "ActionCosts: {} has {} entries, the schedule has {} stages", what, v.size(), stages);
    for (double x : v) PPT_CHECK(x >= 0.0, "ActionCosts: {} has a negative cost {}", what, x);
  };
  check(c.forward_per_stage, "forward_per_stage");
  check(c.backward_per_stage, "backward_per_stage");
  check(c.backward_input_per_stage, "backward_input_per_stage");
  check(c.backward_weight_per_stage, "backward_weight_per_stage");
  PPT_CHECK(c.forward >= 0 && c.backward >= 0 && c.backward_input >= 0 && c.backward_weight >= 0 &&
                c.comm >= 0,
            "ActionCosts: costs must be >= 0");
}

}  // namespace

double ActionCosts::cost(const Action& a) const {
  switch (a.kind) {
    case ActionKind::Forward: return per_stage_or(forward_per_stage, forward, a.stage);
    case ActionKind::Backward: return per_stage_or(backward_per_stage, backward, a.stage);
    case ActionKind::BackwardInput:
      return per_stage_or(backward_input_per_stage, backward_input, a.stage);
    case ActionKind::BackwardWeight:
      return per_stage_or(backward_weight_per_stage, backward_weight, a.stage);
    default: return 0.0;
  }
}

ActionCosts parse_action_costs(std::string_view text, ActionCosts base) {
  const std::string all(text);
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string_view entry = text.substr(at, comma - at);
    at = comma + 1;
    const std::size_t eq = entry.find('=');
    PPT_CHECK(eq != std::string_view::npos && eq > 0,
              "costs '{}': expected NAME=VALUE entries separated by commas, got '{}'", all, entry);
    const std::string name(entry.substr(0, eq)), value(entry.substr(eq + 1));
    double* slot = name == "F"      ? &base.forward
                   : name == "B"    ? &base.backward
                   : name == "I"    ? &base.backward_input
                   : name == "W"    ? &base.backward_weight
                   : name == "comm" ? &base.comm
                                    : nullptr;
    PPT_CHECK(slot != nullptr, "costs '{}': unknown name '{}': expected F, B, I, W or comm", all, name);
    std::size_t used = 0;
    double x = -1.0;
    try {
      x = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    PPT_CHECK(used == value.size() && used > 0 && std::isfinite(x) && x >= 0.0,
              "costs '{}': {} must be a number >= 0, got '{}'", all, name, value);
    *slot = x;
  }
  return base;
}

std::string format_action_costs(const ActionCosts& c) {
  if (!c.forward_per_stage.empty()) {
    std::string out = "per-stage costs (stage: F/I/W)";
    for (std::size_t s = 0; s < c.forward_per_stage.size(); ++s) {
      out += fmt::format("{} {}: {:.3g}/{:.3g}/{:.3g}", s == 0 ? "" : ",", s, c.forward_per_stage[s],
                         c.backward_input_per_stage.at(s), c.backward_weight_per_stage.at(s));
    }
    return c.comm > 0.0 ? out + fmt::format(", comm={:g}", c.comm) : out;
  }
  std::string out = fmt::format("F={:g}, B={:g}, I={:g}, W={:g}", c.forward, c.backward,
                                c.backward_input, c.backward_weight);
  if (c.comm > 0.0) out += fmt::format(", comm={:g}", c.comm);
  return out;
}

SimResult simulate(const Schedule& schedule, const ActionCosts& costs) {
  validate_or_throw(schedule);
  check_costs(costs, schedule.stages());
  const Schedule lowered = has_comm(schedule) ? schedule : lower(schedule);
  const int p = lowered.ranks, m = lowered.micro_batches;

  SimResult res;
  res.name = lowered.name;
  res.ranks = p;
  res.virtual_stages = lowered.virtual_stages;
  res.micro_batches = m;
  res.timelines.resize(p);
  res.busy.assign(p, 0.0);
  for (int r = 0; r < p; ++r) {
    for (const Action& a : lowered.actions[r]) res.timelines[r].push_back({a, 0.0, 0.0});
  }

  // Post time of each SEND, by the (stage, mb) of the RECV it feeds; < 0 until posted.
  const std::size_t cells = static_cast<std::size_t>(lowered.stages()) * m;
  std::vector<double> sent_f(cells, -1.0), sent_b(cells, -1.0);
  auto posted = [&](const Action& recv) -> double& {
    const std::size_t c = static_cast<std::size_t>(recv.stage) * m + recv.micro_batch;
    return recv.kind == ActionKind::RecvF ? sent_f[c] : sent_b[c];
  };

  // Every input of a compute action is made or received earlier in its own lowered list
  // (the validator checked it), so a compute starts when its rank is free. Only receives
  // wait on other ranks: advance each rank until it reaches a group holding a receive whose
  // send is not posted yet, and sweep the ranks until all are done.
  std::vector<double> clock(p, 0.0);
  std::vector<int> pc(p, 0);
  std::vector<std::vector<CommGroup>> groups(p);
  std::vector<int> next_group(p, 0);
  for (int r = 0; r < p; ++r) groups[r] = comm_groups(lowered.actions[r]);
  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < p; ++r) {
      auto& timeline = res.timelines[r];
      const int n = static_cast<int>(timeline.size());
      while (pc[r] < n) {
        TimedAction& t = timeline[pc[r]];
        if (is_compute(t.action.kind)) {
          t.start = clock[r];
          t.end = clock[r] + costs.cost(t.action);
          res.busy[r] += t.end - t.start;
          clock[r] = t.end;
          ++pc[r];
          progress = true;
          continue;
        }
        // A comm group: post its sends (once), then finish it when all its data is there.
        const CommGroup g = groups[r][next_group[r]];
        double ready = clock[r];
        bool complete = true;
        for (int i = g.begin; i < g.end; ++i) {
          TimedAction& c = timeline[i];
          c.start = clock[r];
          if (is_send(c.action.kind)) {
            c.end = clock[r];
            double& when = posted(matching_comm(c.action));
            if (when < 0) {
              when = clock[r];
              progress = true;
            }
          } else if (posted(c.action) < 0) {
            complete = false;
          } else {
            c.end = std::max(clock[r], posted(c.action) + costs.comm);
            ready = std::max(ready, c.end);
          }
        }
        if (!complete) break;
        clock[r] = ready;
        pc[r] = g.end;
        ++next_group[r];
        progress = true;
      }
    }
  }
  for (int r = 0; r < p; ++r) {
    PPT_CHECK(pc[r] == static_cast<int>(res.timelines[r].size()),
              "{}: simulation stuck on rank {} although the schedule validated (a bug in "
              "pptrain's schedule simulator)",
              describe(lowered), r);
  }

  res.makespan = *std::max_element(clock.begin(), clock.end());
  double total_busy = 0.0;
  res.bubble_per_rank.resize(p);
  for (int r = 0; r < p; ++r) {
    total_busy += res.busy[r];
    res.bubble_per_rank[r] = res.makespan > 0 ? 1.0 - res.busy[r] / res.makespan : 0.0;
  }
  res.bubble = res.makespan > 0 ? 1.0 - total_busy / (p * res.makespan) : 0.0;

  // A stage runs on one rank, in list order, so its in-flight count does not depend on time.
  res.peak_in_flight.assign(lowered.stages(), 0);
  std::vector<int> in_flight(lowered.stages(), 0);
  for (int r = 0; r < p; ++r) {
    for (const Action& a : lowered.actions[r]) {
      if (a.kind == ActionKind::Forward) {
        res.peak_in_flight[a.stage] = std::max(res.peak_in_flight[a.stage], ++in_flight[a.stage]);
      } else if (a.kind == ActionKind::Backward || a.kind == ActionKind::BackwardWeight) {
        --in_flight[a.stage];
      }
    }
  }
  return res;
}

}  // namespace pptrain::schedule
