// lib/schedule: properties of every generated schedule over many (p, v, m): it validates
// compute-only and lowered, its simulated bubble matches the reference formulas
// (DESIGN.md section 4), its in-flight micro-batches match the known bounds, and the
// simulated timeline respects every data dependency.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/simulator.h"
#include "schedule/validator.h"

using namespace pptrain::schedule;

namespace {

// Bubble fractions are ratios of sums of small integers (or of multiples of 1/v): equal to
// the formula up to a few ulps of double round-off.
constexpr double kBubbleTolerance = 1e-12;

struct Case {
  std::string name;
  int p, v, m;
};

// Every (p, v, m) with p <= 8, m <= 16 and v <= 4 (v > 1 only for interleaved; zbv v = 2).
std::vector<Case> small_cases() {
  std::vector<Case> cases;
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      cases.push_back({"gpipe", p, 1, m});
      cases.push_back({"1f1b", p, 1, m});
      cases.push_back({"zb-h1", p, 1, m});
      cases.push_back({"zbv", p, 2, m});
      for (int v = 1; v <= 4; ++v) {
        cases.push_back({"interleaved", p, v, m});
        cases.push_back({"interleaved-zb", p, v, m});
      }
    }
  }
  return cases;
}

std::string label(const Case& c) {
  return c.name + " p=" + std::to_string(c.p) + " v=" + std::to_string(c.v) +
         " m=" + std::to_string(c.m);
}

void require_valid(const Schedule& s) {
  const ValidationResult r = validate(s);
  INFO(r.message << "\n" << r.grid);
  REQUIRE(r.ok);
}

// Each action starts after its inputs exist, and a rank runs one compute at a time.
void check_timeline_respects_dependencies(const Schedule& s, const SimResult& sim, double comm) {
  std::map<std::tuple<int, int, int>, double> end;  // (kind, stage, mb) -> end time
  auto key = [](ActionKind k, int s, int mb) {
    return std::make_tuple(static_cast<int>(k), s, mb);
  };
  for (const auto& timeline : sim.timelines) {
    for (const TimedAction& t : timeline) {
      end[key(t.action.kind, t.action.stage, t.action.micro_batch)] = t.end;
    }
  }
  const int S = s.stages();
  for (const auto& timeline : sim.timelines) {
    double free_at = 0.0;
    for (const TimedAction& t : timeline) {
      const Action& a = t.action;
      REQUIRE(t.start >= free_at - 1e-9);
      REQUIRE(t.end >= t.start);
      if (is_compute(a.kind)) free_at = t.end;
      if (a.kind == ActionKind::Forward && a.stage > 0) {
        const bool remote = s.rank_of_stage(a.stage) != s.rank_of_stage(a.stage - 1);
        REQUIRE(t.start >= end[key(ActionKind::Forward, a.stage - 1, a.micro_batch)] +
                               (remote ? comm : 0.0) - 1e-9);
      }
      if (makes_input_grad(a.kind)) {
        REQUIRE(t.start >= end[key(ActionKind::Forward, a.stage, a.micro_batch)] - 1e-9);
        if (a.stage < S - 1) {
          const bool remote = s.rank_of_stage(a.stage) != s.rank_of_stage(a.stage + 1);
          REQUIRE(t.start >= end[key(a.kind, a.stage + 1, a.micro_batch)] + (remote ? comm : 0.0) - 1e-9);
        }
      }
      if (a.kind == ActionKind::BackwardWeight) {
        REQUIRE(t.start >= end[key(ActionKind::BackwardInput, a.stage, a.micro_batch)] - 1e-9);
      }
    }
  }
}

}  // namespace

TEST_CASE("Every generated schedule validates, compute-only and lowered", "[schedule]") {
  for (const Case& c : small_cases()) {
    INFO(label(c));
    const Schedule s = generate(c.name, c.p, c.v, c.m);
    REQUIRE(s.actions.size() == static_cast<std::size_t>(c.p));
    for (const auto& list : s.actions) {
      for (const Action& a : list) REQUIRE(is_compute(a.kind));
    }
    require_valid(s);
    const Schedule lowered = lower(s);
    require_valid(lowered);
    CHECK(has_comm(lowered) == (c.p > 1));
  }
}

TEST_CASE("Every generated schedule keeps each channel in order, per direction", "[schedule]") {
  // NCCL matches messages by order on a (sender, receiver, direction) channel, not by tag.
  int mixed_pairs_out_of_order = 0;
  for (const Case& c : small_cases()) {
    INFO(label(c));
    const Schedule lowered = lower(generate(c.name, c.p, c.v, c.m));
    CHECK(channel_order_mismatch(lowered).empty());
    // Why the direction matters: with both directions on one rank pair, interleaved
    // schedules on 2 ranks send in an order the peer does not receive in.
    std::map<std::pair<int, int>, std::vector<int>> sent, received;
    for (int r = 0; r < c.p; ++r) {
      for (const Action& a : lowered.actions[r]) {
        if (!is_comm(a.kind)) continue;
        const int peer = peer_rank(lowered, a), tag = comm_tag(lowered, a);
        if (is_send(a.kind)) sent[{r, peer}].push_back(tag); else received[{peer, r}].push_back(tag);
      }
    }
    if (sent != received) ++mixed_pairs_out_of_order;
  }
  CHECK(mixed_pairs_out_of_order > 0);
}

TEST_CASE("A schedule whose channel order differs between sender and receiver is named", "[schedule]") {
  Schedule lowered = lower(generate("1f1b", 2, 1, 3));
  // Swap rank 1's first two activation receives: rank 0 sends F0 then F1.
  auto& list = lowered.actions[1];
  std::vector<std::size_t> recvs;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].kind == ActionKind::RecvF) recvs.push_back(i);
  }
  REQUIRE(recvs.size() >= 2);
  std::swap(list[recvs[0]].micro_batch, list[recvs[1]].micro_batch);
  CHECK(channel_order_mismatch(lowered) ==
        "rank 0 sends its activations to rank 1 in an order rank 1 does not receive them in");
}

TEST_CASE("Thousands of (p, v, m) validate; interleaved and zb-h1 never worse than 1F1B; interleaved-zb valid", "[schedule]") {
  // DESIGN.md section 4: the validator runs over thousands of triples.
  int checked = 0;
  for (int p = 1; p <= 16; ++p) {
    for (int m = 1; m <= 40; ++m) {
      INFO("p=" << p << " m=" << m);
      require_valid(gpipe(p, m));
      require_valid(one_f_one_b(p, m));
      const double one_f_one_b_bubble = double(p - 1) / (m + p - 1);
      const Schedule zb = zero_bubble_h1(p, m);
      require_valid(zb);
      REQUIRE(simulate(zb).bubble <= one_f_one_b_bubble + kBubbleTolerance);
      checked += 3;
      for (int v = 1; v <= 4; ++v, ++checked) {
        INFO("interleaved v=" << v);
        const Schedule s = interleaved_1f1b(p, v, m);
        require_valid(s);
        ActionCosts costs;
        costs.forward = 1.0 / v;
        costs.backward = 2.0 / v;
        REQUIRE(simulate(s, costs).bubble <= one_f_one_b_bubble + kBubbleTolerance);
        require_valid(interleaved_zero_bubble(p, v, m));
        ++checked;
      }
    }
  }
  CHECK(checked == 7040);
}

TEST_CASE("Lowering: sends follow their compute, receives precede it", "[schedule]") {
  for (const Case& c : small_cases()) {
    INFO(label(c));
    const Schedule lowered = lower(generate(c.name, c.p, c.v, c.m));
    for (int r = 0; r < c.p; ++r) {
      const auto& list = lowered.actions[r];
      for (const CommGroup& g : comm_groups(list)) {
        // A group is the sends of the compute before it, then the receives of the one after.
        bool seen_recv = false;
        for (int i = g.begin; i < g.end; ++i) {
          const Action& a = list[i];
          REQUIRE(peer_rank(lowered, a) != r);
          REQUIRE(comm_tag(lowered, a) == comm_tag(lowered, matching_comm(a)));
          if (is_send(a.kind)) {
            REQUIRE_FALSE(seen_recv);
            const Action& before = list[g.begin - 1];
            REQUIRE(before.stage == a.stage);
            REQUIRE(before.micro_batch == a.micro_batch);
          } else {
            seen_recv = true;
            REQUIRE(g.end < static_cast<int>(list.size()));
            REQUIRE(list[g.end].stage == a.stage);
            REQUIRE(list[g.end].micro_batch == a.micro_batch);
          }
        }
      }
    }
  }
}

TEST_CASE("Large schedules validate", "[schedule]") {
  require_valid(gpipe(64, 512));
  require_valid(one_f_one_b(64, 512));
  require_valid(interleaved_1f1b(16, 4, 64));
  require_valid(interleaved_1f1b(16, 4, 67));  // partial last group
  require_valid(zero_bubble_h1(64, 512));
  require_valid(interleaved_zero_bubble(16, 4, 64));
  require_valid(interleaved_zero_bubble(16, 4, 67));
  const SimResult sim = simulate(one_f_one_b(64, 512));
  CHECK(sim.bubble == Approx(63.0 / (512 + 63)).epsilon(0).margin(kBubbleTolerance));
  CHECK(simulate(zero_bubble_h1(64, 512)).bubble ==
        Approx(63.0 / (3 * 512 + 63)).epsilon(0).margin(kBubbleTolerance));
}

TEST_CASE("Interleaved with one chunk per rank is 1F1B", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m)
      CHECK(interleaved_1f1b(p, 1, m).actions == one_f_one_b(p, m).actions);
  }
}

TEST_CASE("GPipe and 1F1B bubble is (p-1)/(m+p-1) with F=1, B=2", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      INFO("p=" << p << " m=" << m);
      const double expected = double(p - 1) / (m + p - 1);
      for (const Schedule& s : {gpipe(p, m), one_f_one_b(p, m)}) {
        const SimResult sim = simulate(s);
        CHECK(sim.makespan == Approx(3.0 * (m + p - 1)).epsilon(0).margin(1e-9));
        CHECK(sim.bubble == Approx(expected).epsilon(0).margin(kBubbleTolerance));
        for (double b : sim.bubble_per_rank) {
          CHECK(b == Approx(expected).epsilon(0).margin(kBubbleTolerance));
        }
      }
    }
  }
}

TEST_CASE("Interleaved bubble is (p-1)/(v*m+p-1) with chunk costs F=1/v, B=2/v", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int v = 1; v <= 4; ++v) {
      for (int m = 1; m <= 16; ++m) {
        INFO("p=" << p << " v=" << v << " m=" << m);
        ActionCosts costs;
        costs.forward = 1.0 / v;
        costs.backward = 2.0 / v;
        const double bubble = simulate(interleaved_1f1b(p, v, m), costs).bubble;
        const double one_f_one_b_bubble = double(p - 1) / (m + p - 1);
        if (m % p == 0) {
          CHECK(bubble ==
                Approx(double(p - 1) / (v * m + p - 1)).epsilon(0).margin(kBubbleTolerance));
        } else if (m < p) {
          // One group of m < p micro-batches: each goes through all S = v*p stages one after
          // the other, a plain S-stage pipeline: makespan (S + m - 1) chunk slots, each rank
          // busy v*m of them.
          const int S = p * v;
          CHECK(bubble ==
                Approx(1.0 - double(v * m) / (S + m - 1)).epsilon(0).margin(kBubbleTolerance));
        } else {
          // A partial last group waits at its chunk changes (generators.cpp): no closed
          // form, but never worse than 1F1B.
          CHECK(bubble <= one_f_one_b_bubble + kBubbleTolerance);
          CHECK(bubble >= double(p - 1) / (v * m + p - 1) - kBubbleTolerance);
        }
      }
    }
  }
}

TEST_CASE("zb-h1 bubble is (p-1)/(3m+p-1) with F=I=W=1 and m >= p, a third of 1F1B's", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      INFO("p=" << p << " m=" << m);
      const SimResult sim = simulate(zero_bubble_h1(p, m));
      const double one_f_one_b_bubble = double(p - 1) / (m + p - 1);
      if (m >= p) {
        // Every rank is idle p-1 units of a makespan of 3m + p-1 (1F1B: 3(p-1) of 3(m+p-1)).
        const double expected = double(p - 1) / (3 * m + p - 1);
        CHECK(sim.makespan == Approx(3.0 * m + p - 1).epsilon(0).margin(1e-9));
        CHECK(sim.bubble == Approx(expected).epsilon(0).margin(kBubbleTolerance));
        for (double b : sim.bubble_per_rank) {
          CHECK(b == Approx(expected).epsilon(0).margin(kBubbleTolerance));
        }
      } else {
        // Too few micro-batches to fill the warm-up: no closed form, but still under 1F1B's.
        CHECK(sim.bubble <= one_f_one_b_bubble + kBubbleTolerance);
      }
      if (p > 1) CHECK(sim.bubble < one_f_one_b_bubble);
    }
  }
}

TEST_CASE("interleaved-zb bubble is (p-1)/(3vm+p-1) with F=I=W=1/v and m a multiple of p", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int v = 1; v <= 4; ++v) {
      for (int m = 1; m <= 16; ++m) {
        INFO("p=" << p << " v=" << v << " m=" << m);
        ActionCosts costs;
        costs.forward = costs.backward_input = costs.backward_weight = 1.0 / v;
        costs.backward = 2.0 / v;
        const SimResult zb = simulate(interleaved_zero_bubble(p, v, m), costs);
        const SimResult il = simulate(interleaved_1f1b(p, v, m), costs);
        // A synchronous step's lower bound: rank p-1 starts after (p-1)/v, then works 3m.
        const double lower_bound = double(p - 1) / (3 * v * m + p - 1);
        CHECK(zb.bubble >= lower_bound - kBubbleTolerance);
        if (m % p == 0) {
          CHECK(zb.bubble == Approx(lower_bound).epsilon(0).margin(kBubbleTolerance));
        }
        CHECK(zb.bubble <= il.bubble + kBubbleTolerance);
        // Memory: no rank holds more micro-batch chunks (the sum of its chunks' peaks) than
        // interleaved's most loaded rank.
        auto most_held = [&](const SimResult& sim) {
          int most = 0;
          for (int r = 0; r < p; ++r) {
            int held = 0;
            for (int c = 0; c < v; ++c) held += sim.peak_in_flight[c * p + r];
            most = std::max(most, held);
          }
          return most;
        };
        CHECK(most_held(zb) <= most_held(il));
      }
      if (v == 1) CHECK(interleaved_zero_bubble(p, 1, 8).actions == zero_bubble_h1(p, 8).actions);
    }
  }
}

TEST_CASE("zbv: rank r holds stages r and 2p-1-r; bubble (p-1)/(6m+p-1) for m a multiple of p; 1F1B's memory", "[schedule]") {
  int checked = 0;
  for (int p = 1; p <= 16; ++p) {
    for (int m = 1; m <= 40; ++m, ++checked) {
      INFO("p=" << p << " m=" << m);
      const Schedule zbv = zero_bubble_v(p, m);
      REQUIRE(zbv.placement == StagePlacement::Vee);
      for (int r = 0; r < p; ++r) {
        for (const Action& a : zbv.actions[r]) REQUIRE((a.stage == r || a.stage == 2 * p - 1 - r));
      }
      require_valid(zbv);
      const Schedule lowered = lower(zbv);
      require_valid(lowered);
      REQUIRE(channel_order_mismatch(lowered).empty());
      ActionCosts costs;
      costs.forward = costs.backward_input = costs.backward_weight = 0.5;
      costs.backward = 1.0;
      const SimResult sim = simulate(zbv, costs);
      // A synchronous step's lower bound: rank p-1 starts after (p-1)/2, then works 3m.
      const double lower_bound = double(p - 1) / (6 * m + p - 1);
      REQUIRE(sim.bubble >= lower_bound - kBubbleTolerance);
      if (m % p == 0) REQUIRE(sim.bubble == Approx(lower_bound).epsilon(0).margin(kBubbleTolerance));
      REQUIRE(sim.bubble <= double(p - 1) / (m + p - 1) + kBubbleTolerance);  // 1F1B's
      // Memory, as the executor pools stashes (per chunk, each to its own peak): at most
      // min(p, m) micro-batches of the rank's layers (2 min(p, m) chunk stashes), 1F1B's
      // first-stage peak, on every rank, and never more than interleaved-zb's busiest rank.
      const SimResult zb = simulate(interleaved_zero_bubble(p, 2, m), costs);
      int interleaved_most = 0;
      for (int r = 0; r < p; ++r) {
        REQUIRE(sim.peak_in_flight[r] + sim.peak_in_flight[2 * p - 1 - r] <= 2 * std::min(p, m));
        interleaved_most = std::max(interleaved_most, zb.peak_in_flight[r] + zb.peak_in_flight[p + r]);
      }
      REQUIRE(2 * std::min(p, m) <= interleaved_most);
    }
  }
  CHECK(checked == 640);
}

TEST_CASE("zb-h1 without its split is 1F1B: the same F and B order per rank", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      INFO("p=" << p << " m=" << m);
      Schedule merged = zero_bubble_h1(p, m);
      for (auto& list : merged.actions) {
        std::erase_if(list, [](const Action& a) { return a.kind == ActionKind::BackwardWeight; });
        for (Action& a : list) {
          if (a.kind == ActionKind::BackwardInput) a.kind = ActionKind::Backward;
        }
      }
      CHECK(merged.actions == one_f_one_b(p, m).actions);
    }
  }
}

TEST_CASE("Peak in-flight micro-batches: 1F1B min(p-i, m) on stage i, GPipe m, zb-h1 min(p, m)", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      INFO("p=" << p << " m=" << m);
      const SimResult f1b1 = simulate(one_f_one_b(p, m));
      const SimResult gp = simulate(gpipe(p, m));
      // zb-h1 keeps a micro-batch until its W: min(p, m) on every stage, 1F1B's first-stage
      // peak, so the largest stash of any rank does not grow.
      const SimResult zb = simulate(zero_bubble_h1(p, m));
      for (int i = 0; i < p; ++i) {
        CHECK(f1b1.peak_in_flight[i] == std::min(p - i, m));
        CHECK(gp.peak_in_flight[i] == m);
        CHECK(zb.peak_in_flight[i] == std::min(p, m));
      }
    }
  }
}

TEST_CASE("Simulated timelines respect every dependency, with and without latency", "[schedule]") {
  for (const Case& c : small_cases()) {
    if (c.m % 5 != 1 && c.m != 16) continue;  // a spread of m keeps this fast
    INFO(label(c));
    const Schedule s = generate(c.name, c.p, c.v, c.m);
    for (double comm : {0.0, 0.75}) {
      ActionCosts costs;
      costs.comm = comm;
      check_timeline_respects_dependencies(s, simulate(s, costs), comm);
    }
  }
}
