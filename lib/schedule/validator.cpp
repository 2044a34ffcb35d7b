#include "schedule/validator.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "core/error.h"
#include "schedule/lowering.h"

namespace pptrain::schedule {
namespace {

constexpr int kMaxProblems = 8;     // structural problems listed before "... and N more"
constexpr int kGridTailSteps = 40;  // grid rows shown before the failing step

// Structural problems, collected so one run shows several at once.
struct Problems {
  std::vector<std::string> list;
  int more = 0;
  void add(std::string problem) {
    if (static_cast<int>(list.size()) < kMaxProblems) {
      list.push_back(std::move(problem));
    } else {
      ++more;
    }
  }
  bool empty() const { return list.empty(); }
  std::string message(const Schedule& s) const {
    std::string out = fmt::format("{} is not a valid schedule:", describe(s));
    for (const std::string& p : list) out += "\n  " + p;
    if (more > 0) out += fmt::format("\n  ... and {} more problems", more);
    return out;
  }
};

// Where each action sits: pos(kind, stage, mb) = its index in its rank's list, -1 if absent.
// Built once, O(actions); reports duplicates while it is built.
class ActionIndex {
 public:
  ActionIndex(const Schedule& s, Problems& problems) : m_(s.micro_batches) {
    for (auto& v : pos_) v.assign(static_cast<std::size_t>(s.stages()) * m_, -1);
    for (int r = 0; r < s.ranks; ++r) {
      const auto& list = s.actions[r];
      for (int i = 0; i < static_cast<int>(list.size()); ++i) {
        int& slot = at(list[i]);
        if (slot >= 0) {
          problems.add(fmt::format("{} appears twice on rank {} (indices {} and {})",
                                   to_string(list[i]), r, slot, i));
        } else {
          slot = i;
        }
      }
    }
  }
  int pos(const Action& a) const { return pos_[kind_slot(a.kind)][cell(a)]; }
  bool has(const Action& a) const { return pos(a) >= 0; }

 private:
  static int kind_slot(ActionKind k) { return static_cast<int>(k); }
  std::size_t cell(const Action& a) const {
    return static_cast<std::size_t>(a.stage) * m_ + a.micro_batch;
  }
  int& at(const Action& a) { return pos_[kind_slot(a.kind)][cell(a)]; }

  int m_;
  std::array<std::vector<int>, 8> pos_;
};

// F once; B once, or I and W once each; F before B/I before W (all on the stage's rank).
void check_compute(const Schedule& s, const ActionIndex& index, Problems& problems) {
  for (int st = 0; st < s.stages(); ++st) {
    const int r = s.rank_of_stage(st);
    for (int mb = 0; mb < s.micro_batches; ++mb) {
      const Action f{st, ActionKind::Forward, mb}, b{st, ActionKind::Backward, mb},
          i{st, ActionKind::BackwardInput, mb}, w{st, ActionKind::BackwardWeight, mb};
      if (!index.has(f)) problems.add(fmt::format("no forward {} on rank {}", to_string(f), r));
      if (index.has(b) && (index.has(i) || index.has(w))) {
        problems.add(fmt::format("{} and a split backward {}/{} on rank {}: use one or the other",
                                 to_string(b), to_string(i), to_string(w), r));
      } else if (!index.has(b) && !index.has(i) && !index.has(w)) {
        problems.add(fmt::format("no backward {} (or {} and {}) on rank {}", to_string(b),
                                 to_string(i), to_string(w), r));
      } else if (index.has(i) != index.has(w)) {
        const Action& there = index.has(i) ? i : w;
        const Action& missing = index.has(i) ? w : i;
        problems.add(fmt::format("{} without {} on rank {}: a split backward needs both",
                                 to_string(there), to_string(missing), r));
      }
      auto check_order = [&](const Action& first, const Action& second, const char* why) {
        if (index.has(first) && index.has(second) && index.pos(second) < index.pos(first)) {
          problems.add(fmt::format("rank {} runs {} (index {}) before {} (index {}): {}", r,
                                   to_string(second), index.pos(second), to_string(first),
                                   index.pos(first), why));
        }
      };
      check_order(f, b, "a backward needs its forward");
      check_order(f, i, "a backward needs its forward");
      check_order(i, w, "W needs the I of the same micro-batch");
    }
  }
}

// Every cross-rank hand-over has exactly one SEND and one RECV (duplicates were reported by
// ActionIndex; misplaced or peerless comm actions by action_misfit).
void check_comm(const Schedule& s, const ActionIndex& index, Problems& problems) {
  for (int st = 0; st + 1 < s.stages(); ++st) {
    if (s.rank_of_stage(st) == s.rank_of_stage(st + 1)) continue;
    for (int mb = 0; mb < s.micro_batches; ++mb) {
      for (const Action& a :
           {Action{st, ActionKind::SendF, mb}, Action{st + 1, ActionKind::RecvF, mb},
            Action{st + 1, ActionKind::SendB, mb}, Action{st, ActionKind::RecvB, mb}}) {
        if (!index.has(a)) {
          problems.add(fmt::format("missing {} on rank {} (the other end of {} on rank {})",
                                   to_string(a), s.rank_of_stage(a.stage),
                                   to_string(matching_comm(a)), peer_rank(s, a)));
        }
      }
    }
  }
}

// Lockstep run of a structurally valid lowered schedule. In each step every rank runs at
// most one action, chosen against the state at the start of the step (so the result does
// not depend on the order ranks are visited). Within a comm group any action may go first,
// because the executor posts the group together; elsewhere a rank runs its list in order.
class Lockstep {
 public:
  explicit Lockstep(const Schedule& s) : s_(s), S_(s.stages()), m_(s.micro_batches) {
    state_.assign(static_cast<std::size_t>(S_) * m_, 0);
    split_.assign(static_cast<std::size_t>(S_) * m_, 0);
    pc_.assign(s.ranks, 0);
    executed_.resize(s.ranks);
    group_end_.resize(s.ranks);
    for (int r = 0; r < s.ranks; ++r) {
      const auto& list = s.actions[r];
      executed_[r].assign(list.size(), 0);
      group_end_[r].assign(list.size(), 0);
      for (const CommGroup& g : comm_groups(list)) {
        for (int i = g.begin; i < g.end; ++i) group_end_[r][i] = g.end;
      }
      for (const Action& a : list) {
        if (a.kind == ActionKind::BackwardInput) split_[cell(a.stage, a.micro_batch)] = 1;
      }
    }
  }

  ValidationResult run() {
    const int p = s_.ranks;
    int unfinished = 0;
    for (int r = 0; r < p; ++r) unfinished += s_.actions[r].empty() ? 0 : 1;
    std::vector<int> chosen(p);
    for (int step = 0; unfinished > 0; ++step) {
      bool moved = false;
      for (int r = 0; r < p; ++r) {
        chosen[r] = choose(r);
        moved = moved || chosen[r] >= 0;
      }
      if (!moved) return deadlock(step);
      for (int r = 0; r < p; ++r) {
        if (chosen[r] < 0) continue;
        const Action& a = s_.actions[r][chosen[r]];
        state_[cell(a.stage, a.micro_batch)] |= bit(a.kind);
        executed_[r][chosen[r]] = 1;
        const int n = static_cast<int>(s_.actions[r].size());
        while (pc_[r] < n && executed_[r][pc_[r]]) ++pc_[r];
        if (pc_[r] == n) --unfinished;
      }
      tail_.push_back(chosen);
      if (static_cast<int>(tail_.size()) > kGridTailSteps) tail_.pop_front();
      steps_ = step + 1;
    }
    ValidationResult ok;
    ok.steps = steps_;
    return ok;
  }

 private:
  // Bits of state_[stage * m + mb]: what has run for that (stage, micro-batch).
  static std::uint8_t bit(ActionKind k) {
    switch (k) {
      case ActionKind::Forward: return 1;
      case ActionKind::Backward:
      case ActionKind::BackwardInput: return 2;  // the input gradient exists
      case ActionKind::BackwardWeight: return 4;
      case ActionKind::SendF: return 8;
      case ActionKind::SendB: return 16;
      case ActionKind::RecvF: return 32;
      case ActionKind::RecvB: return 64;
    }
    return 0;
  }
  std::size_t cell(int stage, int mb) const { return static_cast<std::size_t>(stage) * m_ + mb; }
  bool done(const Action& a) const { return state_[cell(a.stage, a.micro_batch)] & bit(a.kind); }
  bool remote(int s1, int s2) const { return s_.rank_of_stage(s1) != s_.rank_of_stage(s2); }
  // The action of stage `stage` that makes micro-batch mb's input gradient: B, or I if split.
  Action grad_maker(int stage, int mb) const {
    return {stage, split_[cell(stage, mb)] ? ActionKind::BackwardInput : ActionKind::Backward, mb};
  }

  // The first input of `a` that does not exist yet, or nothing when `a` can run.
  std::optional<Action> unmet(const Action& a) const {
    const int s = a.stage, mb = a.micro_batch;
    auto need = [&](const Action& dep) -> std::optional<Action> {
      return done(dep) ? std::nullopt : std::optional<Action>(dep);
    };
    switch (a.kind) {
      case ActionKind::Forward:
        if (s == 0) return std::nullopt;
        return need(remote(s - 1, s) ? Action{s, ActionKind::RecvF, mb}
                                     : Action{s - 1, ActionKind::Forward, mb});
      case ActionKind::Backward:
      case ActionKind::BackwardInput:
        if (auto f = need({s, ActionKind::Forward, mb})) return f;
        if (s == S_ - 1) return std::nullopt;
        return need(remote(s + 1, s) ? Action{s, ActionKind::RecvB, mb} : grad_maker(s + 1, mb));
      case ActionKind::BackwardWeight: return need({s, ActionKind::BackwardInput, mb});
      case ActionKind::SendF: return need({s, ActionKind::Forward, mb});
      case ActionKind::SendB: return need(grad_maker(s, mb));
      case ActionKind::RecvF:
      case ActionKind::RecvB: return need(matching_comm(a));
    }
    return std::nullopt;
  }

  // Index of the action rank r runs this step, or -1.
  int choose(int r) const {
    const auto& list = s_.actions[r];
    const int pc = pc_[r];
    if (pc == static_cast<int>(list.size())) return -1;
    if (is_compute(list[pc].kind)) return unmet(list[pc]) ? -1 : pc;
    for (int i = pc; i < group_end_[r][pc]; ++i) {
      if (!executed_[r][i] && !unmet(list[i])) return i;
    }
    return -1;
  }

  // The actions rank r is stuck at: its next action, or the unrun ones of its comm group.
  std::vector<int> stuck_at(int r) const {
    const int pc = pc_[r];
    if (is_compute(s_.actions[r][pc].kind)) return {pc};
    std::vector<int> out;
    for (int i = pc; i < group_end_[r][pc]; ++i) {
      if (!executed_[r][i]) out.push_back(i);
    }
    return out;
  }

  ValidationResult deadlock(int step) const {
    const int p = s_.ranks;
    ValidationResult res;
    res.ok = false;
    res.failing_step = step;
    res.message = fmt::format("{}: deadlock at step {}: no rank can move", describe(s_), step);
    std::vector<std::string> stuck_cell(p);
    for (int r = 0; r < p; ++r) {
      if (pc_[r] == static_cast<int>(s_.actions[r].size())) {
        stuck_cell[r] = "done";
        continue;
      }
      const std::vector<int> at = stuck_at(r);
      stuck_cell[r] = fmt::format("[{}]", to_string(s_.actions[r][at.front()]));
      for (int i : at) {
        const Action& a = s_.actions[r][i];
        const Action dep = *unmet(a);
        const int dep_rank = s_.rank_of_stage(dep.stage);
        std::string line =
            fmt::format("rank {} waits at {} for {}", r, to_string(a), to_string(dep));
        if (dep_rank == r) {
          line += ", which comes later in its own list";
        } else {
          line += fmt::format(" on rank {}", dep_rank);
          if (dep.kind == ActionKind::SendF) {
            line += fmt::format(" (sent after {})",
                                to_string({dep.stage, ActionKind::Forward, dep.micro_batch}));
          } else if (dep.kind == ActionKind::SendB) {
            line +=
                fmt::format(" (sent after {})", to_string(grad_maker(dep.stage, dep.micro_batch)));
          }
          line +=
              fmt::format(", which is stuck at {}", to_string(s_.actions[dep_rank][pc_[dep_rank]]));
        }
        res.message += "\n  " + line;
      }
    }
    res.grid = grid(step, stuck_cell);
    return res;
  }

  // Rows tail_ (the steps before `step`), then the failing step with the stuck actions.
  std::string grid(int step, const std::vector<std::string>& stuck_cell) const {
    const int p = s_.ranks;
    const int first = step - static_cast<int>(tail_.size());
    std::vector<std::vector<std::string>> rows;
    for (const auto& chosen : tail_) {
      std::vector<std::string> row(p);
      for (int r = 0; r < p; ++r) {
        if (chosen[r] >= 0) row[r] = to_string(s_.actions[r][chosen[r]]);
      }
      rows.push_back(std::move(row));
    }
    rows.push_back(stuck_cell);
    std::vector<std::size_t> width(p);
    for (int r = 0; r < p; ++r) {
      width[r] = fmt::format("rank {}", r).size();
      for (const auto& row : rows) width[r] = std::max(width[r], row[r].size());
    }
    const int step_width = std::max<int>(4, static_cast<int>(std::to_string(step).size()));
    auto line = [&](std::string_view mark, const std::string& label,
                    const std::vector<std::string>& cells) {
      std::string out = fmt::format("{:<3}{:>{}}", mark, label, step_width);
      for (int r = 0; r < p; ++r) out += fmt::format("  {:<{}}", cells[r], width[r]);
      while (!out.empty() && out.back() == ' ') out.pop_back();
      return out + "\n";
    };
    std::vector<std::string> header(p);
    for (int r = 0; r < p; ++r) header[r] = fmt::format("rank {}", r);
    std::string out = line("", "step", header);
    if (first > 0) out += fmt::format("   ... {} earlier steps not shown\n", first);
    for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
      const bool failing = i + 1 == static_cast<int>(rows.size());
      out += line(failing ? ">>" : "", std::to_string(first + i), rows[i]);
    }
    out +=
        "(a cell is the action a rank ran in that step, blank while it waits; at the failing "
        "step >>, [x] is the action a rank is stuck at)\n";
    return out;
  }

  const Schedule& s_;
  const int S_, m_;
  std::vector<std::uint8_t> state_;                  // [stage * m + mb] -> bits of what ran
  std::vector<std::uint8_t> split_;                  // [stage * m + mb] -> backward split into I/W
  std::vector<int> pc_;                              // [rank] -> first action not yet run
  std::vector<std::vector<std::uint8_t>> executed_;  // [rank][index] -> has run
  std::vector<std::vector<int>> group_end_;          // [rank][index of a comm action] -> group end
  std::deque<std::vector<int>> tail_;                // last steps: [rank] -> index run, or -1
  int steps_ = 0;
};

}  // namespace

ValidationResult validate(const Schedule& schedule) {
  const Schedule& s = schedule;
  ValidationResult bad;
  bad.ok = false;
  try {
    check_shape(s.ranks, s.virtual_stages, s.micro_batches, s.placement);
  } catch (const Error& e) {
    bad.message = fmt::format("{}: {}", describe(s), e.what());
    return bad;
  }
  if (static_cast<int>(s.actions.size()) != s.ranks) {
    bad.message = fmt::format("{}: has action lists for {} ranks, expected {}", describe(s),
                              s.actions.size(), s.ranks);
    return bad;
  }
  Problems problems;
  for (int r = 0; r < s.ranks; ++r) {
    for (int i = 0; i < static_cast<int>(s.actions[r].size()); ++i) {
      const std::string misfit = action_misfit(s, r, s.actions[r][i]);
      if (!misfit.empty()) {
        problems.add(
            fmt::format("rank {} index {}: {}: {}", r, i, to_string(s.actions[r][i]), misfit));
      }
    }
  }
  if (!problems.empty()) {  // indices out of range: nothing below may look them up
    bad.message = problems.message(s);
    return bad;
  }
  const bool lowered = has_comm(s);
  {
    const ActionIndex index(s, problems);
    check_compute(s, index, problems);
    if (lowered) check_comm(s, index, problems);
  }
  if (!problems.empty()) {
    bad.message = problems.message(s);
    return bad;
  }
  // A compute-only schedule is checked as the executor will run it: lowered.
  if (lowered) return Lockstep(s).run();
  const Schedule lowered_copy = lower(s);
  return Lockstep(lowered_copy).run();
}

void validate_or_throw(const Schedule& schedule) {
  const ValidationResult result = validate(schedule);
  if (result.ok) return;
  if (result.grid.empty()) PPT_THROW("{}", result.message);
  PPT_THROW("{}\n{}", result.message, result.grid);
}

}  // namespace pptrain::schedule
