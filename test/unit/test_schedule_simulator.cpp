// lib/schedule: the simulator on cases small enough to work out by hand (latency, per-stage
// costs), the text grid of `pptrain plan` and the Chrome trace.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/simulator.h"
#include "schedule/timeline.h"

using namespace pptrain::schedule;
using Catch::Matchers::Contains;

namespace {

// Times here are sums of a few exactly representable costs.
constexpr double kTimeTolerance = 1e-12;

const TimedAction& find(const SimResult& sim, int rank, const std::string& action) {
  for (const TimedAction& t : sim.timelines[rank]) {
    if (to_string(t.action) == action) return t;
  }
  FAIL("no " << action << " on rank " << rank);
  throw;  // unreachable: FAIL throws
}

}  // namespace

TEST_CASE("Simulator: communication latency, worked by hand", "[schedule]") {
  ActionCosts costs;
  costs.comm = 0.5;
  const SimResult sim = simulate(gpipe(2, 1), costs);
  // 0F0 [0,1] -> 0.5 on the wire -> 1F0 [1.5,2.5], 1B0 [2.5,4.5] -> 0.5 -> 0B0 [5,7].
  CHECK(find(sim, 1, "1RECV_F0").end == Approx(1.5).margin(kTimeTolerance));
  CHECK(find(sim, 1, "1F0").start == Approx(1.5).margin(kTimeTolerance));
  CHECK(find(sim, 1, "1SEND_B0").start == Approx(4.5).margin(kTimeTolerance));
  CHECK(find(sim, 0, "0RECV_B0").start == Approx(1.0).margin(kTimeTolerance));  // posted early
  CHECK(find(sim, 0, "0B0").start == Approx(5.0).margin(kTimeTolerance));
  CHECK(sim.makespan == Approx(7.0).margin(kTimeTolerance));
  CHECK(sim.busy == std::vector<double>{3.0, 3.0});
  CHECK(sim.bubble == Approx(4.0 / 7.0).margin(kTimeTolerance));
  CHECK(sim.bubble_per_rank[0] == Approx(4.0 / 7.0).margin(kTimeTolerance));
}

TEST_CASE("Simulator: per-stage costs", "[schedule]") {
  ActionCosts costs;
  costs.forward_per_stage = {1.0, 3.0};
  costs.backward_per_stage = {2.0, 4.0};
  const SimResult sim = simulate(one_f_one_b(2, 2), costs);
  // Stage 1 is the bottleneck: 1F0 [1,4] 1B0 [4,8] 1F1 [8,11] 1B1 [11,15], then 0B1 [15,17].
  CHECK(sim.makespan == Approx(17.0).margin(kTimeTolerance));
  CHECK(sim.busy[1] == Approx(14.0).margin(kTimeTolerance));
  CHECK(sim.bubble_per_rank[1] == Approx(3.0 / 17.0).margin(kTimeTolerance));
  CHECK(costs.cost({1, ActionKind::Forward, 0}) == 3.0);
  CHECK(costs.cost({0, ActionKind::SendF, 0}) == 0.0);

  ActionCosts wrong;
  wrong.forward_per_stage = {1.0};
  CHECK_THROWS_WITH(simulate(one_f_one_b(2, 2), wrong),
                    Contains("forward_per_stage has 1 entries, the schedule has 2 stages"));
  ActionCosts negative;
  negative.comm = -1.0;
  CHECK_THROWS_WITH(simulate(one_f_one_b(2, 2), negative), Contains("must be >= 0"));
}

TEST_CASE("Simulator takes compute-only and lowered schedules alike", "[schedule]") {
  const Schedule s = interleaved_1f1b(3, 2, 7);
  const SimResult a = simulate(s), b = simulate(lower(s));
  CHECK(a.makespan == b.makespan);
  CHECK(a.peak_in_flight == b.peak_in_flight);
  REQUIRE(a.timelines.size() == 3);
  CHECK(a.timelines[1].size() == lower(s).actions[1].size());
}

TEST_CASE("format_grid: time slots x ranks", "[schedule]") {
  const std::string grid = format_grid(one_f_one_b(4, 8));
  CHECK_THAT(grid, Contains("1f1b (p=4, v=1, m=8): makespan 33, bubble 27.27%, one row = 1 time "
                            "unit\n"
                            "time  rank 0  rank 1  rank 2  rank 3\n"
                            "   0  0F0     .       .       .\n"));
  CHECK_THAT(grid, Contains("   3  0F3     1F2     2F1     3F0\n"
                            "   4  .       .       .       3B0\n"
                            "   5  .       .       .       |\n"));
  CHECK_THAT(grid, Contains("  32  |       .       .       .\n"
                            "bubble per rank: 27.27% 27.27% 27.27% 27.27%\n"
                            "peak in-flight micro-batches per stage: 4 3 2 1\n"));

  ActionCosts chunk;
  chunk.forward = 0.5;
  chunk.backward = 1.0;
  const SimResult sim = simulate(interleaved_1f1b(2, 2, 4), chunk);
  const std::string inter = format_grid(interleaved_1f1b(2, 2, 4), &sim);
  CHECK_THAT(inter, Contains("bubble 11.11%, one row = 0.5 time units\n"));  // 1/(2*4+1)
  CHECK_THAT(inter, Contains("   2  2F0     1F1\n"));
}

TEST_CASE("Chrome trace: one pid per rank, X events in microseconds", "[schedule]") {
  ActionCosts costs;
  costs.comm = 0.25;
  const Schedule s = one_f_one_b(2, 2);
  const SimResult sim = simulate(s, costs);
  const nlohmann::json trace = nlohmann::json::parse(to_chrome_trace(sim));
  int x_events = 0, process_names = 0;
  bool saw_first_forward = false;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "M" && e.at("name") == "process_name") ++process_names;
    if (e.at("ph") != "X") continue;
    ++x_events;
    if (e.at("name") == "1F0") {
      saw_first_forward = true;
      CHECK(e.at("pid") == 1);
      CHECK(e.at("tid") == 0);
      CHECK(e.at("cat") == "F");
      CHECK(e.at("ts").get<double>() == Approx(1250.0));  // 0F0 ends at 1, +0.25 latency
      CHECK(e.at("dur").get<double>() == Approx(1000.0));
      CHECK(e.at("args").at("micro_batch") == 0);
    }
  }
  CHECK(process_names == 2);
  CHECK(x_events == static_cast<int>(lower(s).actions[0].size() + lower(s).actions[1].size()));
  CHECK(saw_first_forward);
  CHECK(trace.at("otherData").at("schedule") == "1f1b");
}

TEST_CASE("Action costs from text: measured times into the simulator", "[schedule]") {
  const ActionCosts c = parse_action_costs("W=2.5,F=7,comm=0.25");
  CHECK(c.forward == 7.0);
  CHECK(c.backward == 2.0);  // not given: the default
  CHECK(c.backward_input == 1.0);
  CHECK(c.backward_weight == 2.5);
  CHECK(c.comm == 0.25);
  CHECK(format_action_costs(c) == "F=7, B=2, I=1, W=2.5, comm=0.25");
  CHECK(format_action_costs(ActionCosts{}) == "F=1, B=2, I=1, W=1");
  // zb-h1's bubble is (p-1)(F + I - W) per rank against a busy m(F + I + W) (m >= p).
  const ActionCosts measured = parse_action_costs("F=3,I=2,W=1");
  const SimResult sim = simulate(zero_bubble_h1(2, 4), measured);
  CHECK(sim.makespan == Approx(4 * 6.0 + 1 * (3 + 2 - 1)).epsilon(0).margin(kTimeTolerance));
  CHECK_THROWS_WITH(parse_action_costs("F=1,X=2"), Contains("unknown name 'X': expected F, B, I, W or comm"));
  CHECK_THROWS_WITH(parse_action_costs("F=-1"), Contains("F must be a number >= 0, got '-1'"));
  CHECK_THROWS_WITH(parse_action_costs("F=1e"), Contains("F must be a number >= 0, got '1e'"));
  CHECK_THROWS_WITH(parse_action_costs("F=nan"), Contains("F must be a number >= 0"));
  CHECK_THROWS_WITH(parse_action_costs("F=1,"), Contains("expected NAME=VALUE entries"));
  CHECK_THROWS_WITH(parse_action_costs(""), Contains("expected NAME=VALUE entries"));
}
