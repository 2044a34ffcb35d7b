// lib/schedule: the validator's verdicts and messages (the bad-schedule fixtures in
// test/data/schedules, structural errors, lowered schedules with broken communication)
// and the comm-group semantics the executor relies on.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/schedule_io.h"
#include "schedule/simulator.h"
#include "schedule/validator.h"

using namespace pptrain::schedule;
using Catch::Matchers::Contains;

namespace {

const std::string kScheduleDir = std::string(PPTRAIN_TEST_DATA_DIR) + "/schedules/";

Schedule fixture(const std::string& file, int p, int v, int m) {
  return load_schedule_csv(kScheduleDir + file, p, v, m);
}

Schedule from_text(const std::string& rows_text) {
  return parse_schedule_text(rows_text, "inline");
}

// The same schedule with each B split into I where the B was and W at the end of the list,
// as a zero-bubble schedule defers weight gradients.
Schedule split_backward(const Schedule& s) {
  Schedule out = s;
  for (auto& list : out.actions) {
    std::vector<Action> deferred;
    for (Action& a : list) {
      if (a.kind == ActionKind::Backward) {
        a.kind = ActionKind::BackwardInput;
        deferred.push_back({a.stage, ActionKind::BackwardWeight, a.micro_batch});
      }
    }
    list.insert(list.end(), deferred.begin(), deferred.end());
  }
  return out;
}

}  // namespace

TEST_CASE("Circular wait: rejected with the grid and the failing step marked", "[schedule]") {
  const Schedule s = fixture("circular_wait.csv", 2, 1, 2);
  const ValidationResult r = validate(s);
  REQUIRE_FALSE(r.ok);
  CHECK(r.failing_step == 2);
  CHECK_THAT(r.message, Contains("deadlock at step 2: no rank can move"));
  CHECK_THAT(r.message, Contains("rank 0 waits at 0RECV_B0 for 1SEND_B0 on rank 1 (sent after "
                                 "1B0), which is stuck at 1RECV_F1"));
  CHECK_THAT(r.message, Contains("rank 1 waits at 1RECV_F1 for 0SEND_F1 on rank 0 (sent after "
                                 "0F1), which is stuck at 0RECV_B0"));
  CHECK_THAT(r.grid, Contains("step  rank 0      rank 1\n"));
  CHECK_THAT(r.grid, Contains("      1  0SEND_F0\n"));
  CHECK_THAT(r.grid, Contains(">>    2  [0RECV_B0]  [1RECV_F1]\n"));
  // What a rank prints at start-up: message and grid in one error.
  CHECK_THROWS_AS(validate_or_throw(s), pptrain::Error);
  CHECK_THROWS_WITH(validate_or_throw(s),
                    Contains("deadlock at step 2") && Contains(">>") && Contains("[0RECV_B0]"));
  CHECK_THROWS_WITH(simulate(s), Contains(">>    2  [0RECV_B0]"));
}

TEST_CASE("Missing backward and duplicated forward are named with their rank", "[schedule]") {
  const ValidationResult missing = validate(fixture("missing_backward.csv", 2, 1, 2));
  REQUIRE_FALSE(missing.ok);
  CHECK_THAT(missing.message, Contains("no backward 1B1 (or 1I1 and 1W1) on rank 1"));
  CHECK(missing.grid.empty());  // found before anything is simulated

  const ValidationResult dup = validate(fixture("duplicate_forward.csv", 2, 1, 2));
  REQUIRE_FALSE(dup.ok);
  CHECK_THAT(dup.message, Contains("0F1 appears twice on rank 0 (indices 1 and 3)"));
  CHECK_THROWS_WITH(validate_or_throw(fixture("duplicate_forward.csv", 2, 1, 2)),
                    Contains("csv:") && Contains("duplicate_forward.csv (p=2, v=1, m=2) is not a "
                                                 "valid schedule"));
}

TEST_CASE("Structural errors: placement, counts, order", "[schedule]") {
  Schedule wrong_rank = one_f_one_b(2, 1);
  wrong_rank.actions[0].push_back({1, ActionKind::Forward, 0});
  CHECK_THAT(validate(wrong_rank).message,
             Contains("rank 0 index 2: 1F0: stage 1 lives on rank 1, not on rank 0"));

  Schedule out_of_range = one_f_one_b(2, 1);
  out_of_range.actions[1].push_back({1, ActionKind::Forward, 3});
  CHECK_THAT(validate(out_of_range).message, Contains("micro-batch 3 does not exist"));

  const Schedule b_first = from_text(
      "schedule x ranks=2 virtual_stages=1 micro_batches=1\nrank 0: 0F0 0B0\nrank 1: 1B0 1F0\n");
  CHECK_THAT(validate(b_first).message,
             Contains("rank 1 runs 1B0 (index 0) before 1F0 (index 1): a backward needs its "
                      "forward"));

  const Schedule no_forward =
      from_text("schedule x ranks=1 virtual_stages=2 micro_batches=1\nrank 0: 0F0 0B0 1B0\n");
  CHECK_THAT(validate(no_forward).message, Contains("no forward 1F0 on rank 0"));

  Schedule w_first = split_backward(one_f_one_b(2, 2));
  std::swap(w_first.actions[1][1], w_first.actions[1].back());  // 1W1 before 1I0
  CHECK_THAT(validate(w_first).message, Contains("W needs the I of the same micro-batch"));

  Schedule half_split = split_backward(one_f_one_b(2, 1));
  half_split.actions[0].pop_back();  // drop 0W0
  CHECK_THAT(validate(half_split).message, Contains("0I0 without 0W0 on rank 0"));

  Schedule both = one_f_one_b(2, 1);
  both.actions[0].push_back({0, ActionKind::BackwardWeight, 0});
  CHECK_THAT(validate(both).message, Contains("0B0 and a split backward 0I0/0W0 on rank 0"));

  Schedule short_lists = one_f_one_b(3, 1);
  short_lists.actions.pop_back();
  CHECK_THAT(validate(short_lists).message, Contains("has action lists for 2 ranks, expected 3"));
  CHECK_FALSE(validate(Schedule{"empty", 0, 1, 1, {}}).ok);
}

TEST_CASE("Split backward (I then W) validates and counts in-flight until W", "[schedule]") {
  const Schedule s = split_backward(one_f_one_b(3, 4));
  REQUIRE(validate(s).ok);
  const SimResult sim = simulate(s);
  // W of every micro-batch waits at the end of the list, so all m stay in flight.
  CHECK(sim.peak_in_flight == std::vector<int>{4, 4, 4});
}

TEST_CASE("Lowered schedules: missing or misplaced communication", "[schedule]") {
  const Schedule good = lower(one_f_one_b(2, 1));
  REQUIRE(to_text(good) ==
          "schedule 1f1b ranks=2 virtual_stages=1 micro_batches=1\n"
          "rank 0: 0F0 0SEND_F0 0RECV_B0 0B0\n"
          "rank 1: 1RECV_F0 1F0 1B0 1SEND_B0\n");

  Schedule no_recv = good;
  no_recv.actions[1].erase(no_recv.actions[1].begin());
  CHECK_THAT(validate(no_recv).message,
             Contains("missing 1RECV_F0 on rank 1 (the other end of 0SEND_F0 on rank 0)"));

  Schedule recv_late = good;
  std::swap(recv_late.actions[0][2], recv_late.actions[0][3]);  // 0B0 before 0RECV_B0
  const ValidationResult late = validate(recv_late);
  REQUIRE_FALSE(late.ok);
  CHECK_THAT(late.message, Contains("rank 0 waits at 0B0 for 0RECV_B0, which comes later in its "
                                    "own list"));
  CHECK_THAT(late.grid, Contains(">>"));

  Schedule send_early = good;
  std::swap(send_early.actions[0][0], send_early.actions[0][1]);  // 0SEND_F0 before 0F0
  CHECK_THAT(validate(send_early).message,
             Contains("rank 0 waits at 0SEND_F0 for 0F0, which comes later in its own list"));

  Schedule twice = good;
  twice.actions[0].push_back({0, ActionKind::SendF, 0});
  CHECK_THAT(validate(twice).message, Contains("0SEND_F0 appears twice on rank 0"));
}

TEST_CASE("A comm group is posted together: its sends never wait for its receives", "[schedule]") {
  // Rank 0's group [0RECV_B0 0SEND_F1] lists the receive first. Run one by one it would
  // deadlock (rank 1 sends 1SEND_B0 only after 1F1, which needs 0SEND_F1); posted together,
  // as the executor does, it runs.
  const Schedule s = from_text(
      "schedule crossed ranks=2 virtual_stages=1 micro_batches=2\n"
      "rank 0: 0F0 0SEND_F0 0F1 0RECV_B0 0SEND_F1 0B0 0RECV_B1 0B1\n"
      "rank 1: 1RECV_F0 1F0 1RECV_F1 1F1 1B0 1SEND_B0 1B1 1SEND_B1\n");
  const ValidationResult r = validate(s);
  INFO(r.message << "\n" << r.grid);
  CHECK(r.ok);
  const std::vector<CommGroup> groups = comm_groups(s.actions[0]);
  REQUIRE(groups.size() == 3);
  CHECK((groups[1].begin == 3 && groups[1].end == 5));
  const SimResult sim = simulate(s);
  CHECK(sim.makespan == Approx(9.0));  // 1F1 ends at 3, 1B0 at 5, then 0B0 and 0B1 take 4
}

TEST_CASE("Comm helpers: peers, tags, groups", "[schedule]") {
  const Schedule s = interleaved_1f1b(4, 2, 4);         // stage s on rank s % 4
  CHECK(peer_rank(s, {3, ActionKind::SendF, 0}) == 0);  // stage 4 is on rank 0
  CHECK(peer_rank(s, {4, ActionKind::RecvF, 0}) == 3);
  CHECK(peer_rank(s, {4, ActionKind::SendB, 2}) == 3);
  CHECK(peer_rank(s, {3, ActionKind::RecvB, 2}) == 0);
  CHECK_THROWS_WITH(peer_rank(s, {3, ActionKind::Forward, 0}), Contains("not a communication"));
  CHECK_THROWS_WITH(peer_rank(s, {7, ActionKind::SendF, 0}), Contains("no peer stage 8"));
  CHECK(comm_tag(s, {3, ActionKind::SendF, 1}) == comm_tag(s, {4, ActionKind::RecvF, 1}));
  CHECK(comm_tag(s, {3, ActionKind::SendF, 1}) != comm_tag(s, {4, ActionKind::SendB, 1}));
  CHECK(comm_tag(s, {4, ActionKind::SendB, 1}) == comm_tag(s, {3, ActionKind::RecvB, 1}));
  CHECK(comm_groups({}).empty());
  CHECK(comm_groups(one_f_one_b(1, 3).actions[0]).empty());
  CHECK(matching_comm({2, ActionKind::SendB, 5}) == Action{1, ActionKind::RecvB, 5});
  CHECK_THROWS_WITH(lower(lower(one_f_one_b(2, 1))), Contains("already holds 0SEND_F0"));
}

TEST_CASE("Generator names and impossible combinations", "[schedule]") {
  CHECK(generate("1f1b", 4, 1, 8) == one_f_one_b(4, 8));
  CHECK(generate("gpipe", 2, 1, 3) == gpipe(2, 3));
  CHECK(generate("interleaved", 2, 2, 3) == interleaved_1f1b(2, 2, 3));
  CHECK(generate("zb-h1", 3, 1, 5) == zero_bubble_h1(3, 5));
  CHECK(generate("interleaved-zb", 3, 2, 5) == interleaved_zero_bubble(3, 2, 5));
  CHECK_THROWS_WITH(generate("zb", 2, 1, 2),
                    Contains("unknown schedule 'zb': expected gpipe, 1f1b, interleaved, interleaved-zb, zb-h1 or zbv"));
  CHECK_THROWS_WITH(generate("zb-h1", 2, 2, 2),
                    Contains("schedule zb-h1 runs one stage per rank, but virtual_stages is 2"));
  CHECK_THROWS_WITH(generate("gpipe", 2, 2, 2),
                    Contains("schedule gpipe runs one stage per rank, but virtual_stages is 2"));
  CHECK_THROWS_WITH(generate("1f1b", 2, 3, 2), Contains("use schedule interleaved"));
  CHECK_THROWS_WITH(generate("1f1b", 2, 1, 0), Contains("at least 1 micro-batch"));
  CHECK_THROWS_WITH(one_f_one_b(0, 2), Contains("at least 1 rank"));
  CHECK_THROWS_WITH(interleaved_1f1b(2, 0, 2), Contains("at least 1 virtual stage"));
}
