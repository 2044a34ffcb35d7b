// ZBV: the V-placed zero-bubble schedule (generators.h). Its order is found by playing one
// step out, not written down as a formula: the V shape's two chunks per rank cross in ways a
// closed form gets wrong for m not a multiple of p, and a play-out is correct by
// construction (every action starts after what it needs, so the lowered schedule cannot
// deadlock) and easy to check against the bubble and memory bounds (unit tests).
#include <algorithm>
#include <deque>
#include <vector>

#include "core/error.h"
#include "schedule/generators.h"

namespace pptrain::schedule {
namespace {

constexpr int kNotYet = -1;

// The play-out's state: per (stage, micro-batch) when its F and I end (unit costs, so
// integer time), per stage how many F and I have run (each in micro-batch order), and per
// rank its stashes held and its W to run.
struct ZbvPlayOut {
  int p, m, S;
  bool free_blocked_chunk;  // rule 3's variant, see choose()
  std::vector<int> forward_end, input_grad_end;    // [stage * m + mb], kNotYet until run
  std::vector<int> forwards_run, input_grads_run;  // [stage]
  struct Rank {
    int busy_until = 0;
    int held[2] = {0, 0};             // per chunk: micro-batches with F run and W not yet
    std::deque<Action> weight_grads;  // W to run, in the order their I ran
  };
  std::vector<Rank> ranks;
  int makespan = 0;
  Schedule out;

  ZbvPlayOut(int ranks_, int micro_batches, bool free_blocked_chunk_)
      : p(ranks_), m(micro_batches), S(2 * ranks_), free_blocked_chunk(free_blocked_chunk_),
        forward_end(S * m, kNotYet), input_grad_end(S * m, kNotYet),
        forwards_run(S, 0), input_grads_run(S, 0), ranks(ranks_) {
    out.name = "zbv";
    out.ranks = p;
    out.virtual_stages = 2;
    out.micro_batches = m;
    out.placement = StagePlacement::Vee;
    out.actions.resize(p);
  }

  int chunk_of(int r, int stage) const { return stage == r ? 0 : 1; }
  bool ended_by(const std::vector<int>& ends, int stage, int mb, int t) const {
    const int e = ends[stage * m + mb];
    return e != kNotYet && e <= t;
  }
  bool input_grad_ready(int s, int t) const {
    const int mb = input_grads_run[s];
    return mb < forwards_run[s] && ended_by(forward_end, s, mb, t) &&
           (s == S - 1 || ended_by(input_grad_end, s + 1, mb, t));
  }
  bool forward_ready(int s, int t) const {
    const int mb = forwards_run[s];
    return mb < m && (s == 0 || ended_by(forward_end, s - 1, mb, t));
  }

  // What rank r runs when free at time t, by the rule in generators.h; false when nothing
  // can run yet.
  bool choose(int r, int t, Action& chosen) const {
    const Rank& rank = ranks[r];
    const int stages[2] = {r, S - 1 - r};
    // 1. An I the pipeline waits on; the earlier micro-batch, then the later stage.
    // 2. An F, the same way, while its chunk holds fewer than p stashes. The executor pools
    //    stashes per chunk, so the cap is per chunk: 2p at most on the rank.
    for (ActionKind kind : {ActionKind::BackwardInput, ActionKind::Forward}) {
      const bool input = kind == ActionKind::BackwardInput;
      const std::vector<int>& run = input ? input_grads_run : forwards_run;
      int best = -1;
      for (int c : {1, 0}) {
        const int s = stages[c];
        const bool ready = input ? input_grad_ready(s, t)
                                 : forward_ready(s, t) && rank.held[c] < std::min(p, m);
        if (ready && (best < 0 || run[s] < run[best])) best = s;
      }
      if (best >= 0) {
        chosen = {best, kind, run[best]};
        return true;
      }
    }
    // 3. A W: nobody waits for it, so it fills what would be idle time. The oldest one, or
    //    in the variant, the oldest of a chunk whose F waits for a free stash.
    if (rank.weight_grads.empty()) return false;
    chosen = rank.weight_grads.front();
    if (free_blocked_chunk) {
      for (int c : {0, 1}) {
        if (!forward_ready(stages[c], t) || rank.held[c] < std::min(p, m)) continue;
        for (const Action& w : rank.weight_grads) {
          if (w.stage == stages[c]) {
            chosen = w;
            return true;
          }
        }
      }
    }
    return true;
  }

  void run(int r, int t, const Action& a) {
    Rank& rank = ranks[r];
    const int end = t + 1;
    rank.busy_until = end;
    makespan = std::max(makespan, end);
    out.actions[r].push_back(a);
    if (a.kind == ActionKind::Forward) {
      forward_end[a.stage * m + a.micro_batch] = end;
      ++forwards_run[a.stage];
      ++rank.held[chunk_of(r, a.stage)];
    } else if (a.kind == ActionKind::BackwardInput) {
      input_grad_end[a.stage * m + a.micro_batch] = end;
      ++input_grads_run[a.stage];
      rank.weight_grads.push_back({a.stage, ActionKind::BackwardWeight, a.micro_batch});
    } else {
      rank.weight_grads.erase(std::find(rank.weight_grads.begin(), rank.weight_grads.end(), a));
      --rank.held[chunk_of(r, a.stage)];
    }
  }

  void play() {
    const long long total = 3LL * S * m;  // F, I and W of every (stage, mb)
    long long done = 0;
    for (int t = 0; done < total; ++t) {
      bool any_busy = false;
      for (int r = 0; r < p; ++r) {
        Action a;
        if (ranks[r].busy_until <= t && choose(r, t, a)) {
          run(r, t, a);
          ++done;
        }
        any_busy = any_busy || ranks[r].busy_until > t;
      }
      // Every rank idle with nothing it can run: the rules are broken, not the input.
      PPT_CHECK(any_busy || done == total, "zbv (p={}, m={}): the play-out stalled at time {}", p,
                m, t);
    }
  }
};

}  // namespace

Schedule zero_bubble_v(int ranks, int micro_batches) {
  check_shape(ranks, 2, micro_batches, StagePlacement::Vee);
  // The oldest-W rule fills the pipeline exactly when m is a multiple of p; freeing the
  // blocked chunk first shortens the tail of a last, partial round. Both keep the memory
  // cap; the shorter step wins (the first on a tie).
  ZbvPlayOut oldest(ranks, micro_batches, false), freeing(ranks, micro_batches, true);
  oldest.play();
  freeing.play();
  return freeing.makespan < oldest.makespan ? freeing.out : oldest.out;
}

}  // namespace pptrain::schedule
