// lib/schedule: the action text form, the schedule text and CSV forms (round trips and the
// messages of bad input), and the golden schedule files in test/data/schedules.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "schedule/generators.h"
#include "schedule/lowering.h"
#include "schedule/schedule_io.h"

using namespace pptrain::schedule;
using Catch::Matchers::Contains;

namespace {

const std::string kScheduleDir = std::string(PPTRAIN_TEST_DATA_DIR) + "/schedules/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Compares `actual` with the golden file; PPTRAIN_UPDATE_GOLDEN=1 rewrites the file instead.
// On a mismatch it shows the first differing line, then both texts.
void check_golden(const std::string& name, const std::string& actual) {
  const std::string path = kScheduleDir + name;
  if (const char* update = std::getenv("PPTRAIN_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path, std::ios::binary) << actual;
    WARN("rewrote golden file " << path);
    return;
  }
  const std::string expected = read_text(path);
  if (actual == expected) return;
  std::istringstream a(actual), e(expected);
  std::string la, le;
  int line = 1;
  while (std::getline(a, la) && std::getline(e, le) && la == le) ++line;
  FAIL("generated schedule differs from "
       << path << " at line " << line << "\n  expected: " << le << "\n  actual:   " << la
       << "\n(if the change is intended, rerun with "
       << "PPTRAIN_UPDATE_GOLDEN=1 and review the diff)\n--- expected\n"
       << expected << "--- actual\n"
       << actual);
}

std::vector<Schedule> sample_schedules() {
  return {gpipe(1, 1),
          gpipe(3, 4),
          one_f_one_b(4, 8),
          one_f_one_b(5, 2),
          interleaved_1f1b(1, 3, 2),
          interleaved_1f1b(2, 2, 5),
          interleaved_1f1b(4, 3, 9),
          zero_bubble_v(3, 5)};
}

}  // namespace

TEST_CASE("Actions print and parse back in PyTorch's text form", "[schedule]") {
  CHECK(to_string({2, ActionKind::Forward, 5}) == "2F5");
  CHECK(to_string({1, ActionKind::SendF, 3}) == "1SEND_F3");
  CHECK(to_string({0, ActionKind::RecvB, 12}) == "0RECV_B12");
  CHECK(parse_action("10W7") == Action{10, ActionKind::BackwardWeight, 7});
  for (ActionKind kind : {ActionKind::Forward, ActionKind::Backward, ActionKind::BackwardInput,
                          ActionKind::BackwardWeight, ActionKind::SendF, ActionKind::RecvF,
                          ActionKind::SendB, ActionKind::RecvB}) {
    for (const auto& [stage, mb] : std::vector<std::pair<int, int>>{{0, 0}, {7, 123}, {63, 511}}) {
      const Action a{stage, kind, mb};
      CHECK(parse_action(to_string(a)) == a);
    }
  }
}

TEST_CASE("A bad action names the token and what is wrong", "[schedule]") {
  CHECK_THROWS_AS(parse_action("0X1"), pptrain::Error);
  CHECK_THROWS_WITH(parse_action("0X1"), Contains("'0X1'") && Contains("unknown kind 'X'"));
  CHECK_THROWS_WITH(parse_action("F1"), Contains("'F1'") && Contains("no stage number"));
  CHECK_THROWS_WITH(parse_action("3F"), Contains("'3F'") && Contains("no micro-batch"));
  CHECK_THROWS_WITH(parse_action("3"), Contains("no kind after the stage"));
  CHECK_THROWS_WITH(parse_action("3f1"), Contains("'3f1'"));  // codes are upper case
  CHECK_THROWS_WITH(parse_action("1SEND_F3x"), Contains("unexpected 'x' at the end"));
  CHECK_THROWS_WITH(parse_action("-1F0"), Contains("no stage number"));
  CHECK_THROWS_WITH(parse_action("99999999999F0"), Contains("too large"));
  CHECK_THROWS_WITH(parse_action(""), Contains("''"));
}

TEST_CASE("Schedule text parses back to the same schedule", "[schedule]") {
  for (const Schedule& s : sample_schedules()) {
    CHECK(parse_schedule_text(to_text(s), "round-trip") == s);
    const Schedule lowered = lower(s);
    CHECK(parse_schedule_text(to_text(lowered), "round-trip") == lowered);
  }
  Schedule odd = one_f_one_b(2, 1);
  odd.name = "csv:my runs/plan.csv";  // names may hold spaces
  CHECK(parse_schedule_text(to_text(odd), "odd") == odd);
  CHECK(to_text(one_f_one_b(2, 2)) ==
        "schedule 1f1b ranks=2 virtual_stages=1 micro_batches=2\n"
        "rank 0: 0F0 0F1 0B0 0B1\n"
        "rank 1: 1F0 1B0 1F1 1B1\n");
}

TEST_CASE("Schedule text errors name source:line and the token", "[schedule]") {
  const std::string head = "schedule x ranks=2 virtual_stages=1 micro_batches=1\n";
  CHECK_THROWS_WITH(parse_schedule_text("", "s.txt"), Contains("s.txt: empty"));
  CHECK_THROWS_WITH(parse_schedule_text("plan ranks=2\n", "s.txt"),
                    Contains("s.txt:1: expected 'schedule <name>"));
  CHECK_THROWS_WITH(
      parse_schedule_text("schedule x ranks=two virtual_stages=1 micro_batches=1", "s.txt"),
      Contains("s.txt:1: expected ranks=<number>, got 'ranks=two'"));
  CHECK_THROWS_WITH(
      parse_schedule_text("schedule x ranks=0 virtual_stages=1 micro_batches=1", "s.txt"),
      Contains("s.txt:1:") && Contains("at least 1 rank"));
  CHECK_THROWS_WITH(parse_schedule_text(head + "# comment\nrank 1: 1F0 1B0\n", "s.txt"),
                    Contains("s.txt:3: expected 'rank 0:'") && Contains("got 'rank 1:'"));
  CHECK_THROWS_WITH(parse_schedule_text(head + "rank 0: 0F0 0Z0\n", "s.txt"),
                    Contains("s.txt:2: bad action '0Z0'"));
  CHECK_THROWS_WITH(
      parse_schedule_text(head + "rank 0: 0F0 1B0\n", "s.txt"),
      Contains("s.txt:2: action '1B0' in the list of rank 0: stage 1 lives on rank 1"));
  CHECK_THROWS_WITH(parse_schedule_text(head + "rank 0: 0F0\n", "s.txt"),
                    Contains("s.txt: has lines for 1 ranks, expected 2"));
  CHECK_THROWS_WITH(parse_schedule_text(head + "rank 0:\nrank 1:\nrank 2:\n", "s.txt"),
                    Contains("s.txt:4: 'rank 2:' after the lines of all 2 ranks"));
  CHECK_THROWS_WITH(
      parse_schedule_text("schedule x ranks=2 virtual_stages=1 micro_batches=1 placement=w", "s.txt"),
      Contains("s.txt:1: expected placement=loop or placement=vee, got 'placement=w'"));
  CHECK_THROWS_WITH(
      parse_schedule_text("schedule x ranks=2 virtual_stages=1 micro_batches=1 placement=vee", "s.txt"),
      Contains("s.txt:1:") && Contains("V placement puts two stages on each rank"));
  CHECK_THROWS_WITH(
      parse_schedule_text("schedule zbv ranks=2 virtual_stages=2 micro_batches=1 placement=vee\n"
                          "rank 0: 0F0 2F0\nrank 1:\n", "s.txt"),
      Contains("s.txt:2: action '2F0' in the list of rank 0: stage 2 lives on rank 1, not on rank 0 (vee placement)"));
}

TEST_CASE("Schedule CSV parses back to the same actions", "[schedule]") {
  for (const Schedule& s : sample_schedules()) {
    for (const Schedule& form : {s, lower(s)}) {
      const Schedule back = parse_schedule_csv(to_csv(form), "rt.csv", form.ranks,
                                               form.virtual_stages, form.micro_batches, form.placement);
      CHECK(back.name == "csv:rt.csv");
      CHECK(back.ranks == form.ranks);
      CHECK(back.virtual_stages == form.virtual_stages);
      CHECK(back.micro_batches == form.micro_batches);
      CHECK(back.actions == form.actions);
    }
  }
  CHECK(to_csv(one_f_one_b(2, 1)) ==
        "# pptrain schedule 1f1b (p=2, v=1, m=1): row r = rank r's actions in order\n"
        "0F0,0B0\n"
        "1F0,1B0\n");
}

TEST_CASE("Schedule CSV: comments, blanks and PyTorch's empty idle cells", "[schedule]") {
  const std::string text =
      "# written by hand\r\n"
      "\n"
      "0F0, 0F1 ,,0B0,0B1   # rank 0\r\n"
      ",1F0,1B0,1F1,1B1,\n";
  const Schedule s = parse_schedule_csv(text, "hand.csv", 2, 1, 2);
  CHECK(s.actions == one_f_one_b(2, 2).actions);
  // A rank with no actions is a row of one empty cell.
  const Schedule empty = parse_schedule_csv("0F0,0B0\n,\n", "e.csv", 2, 1, 1);
  CHECK(empty.actions[1].empty());
}

TEST_CASE("Schedule CSV errors name source:line and the token", "[schedule]") {
  CHECK_THROWS_WITH(parse_schedule_csv("0F0,0B0\n# two\n1F0,1Q0\n", "u.csv", 2, 1, 1),
                    Contains("u.csv:3: bad action '1Q0'") && Contains("unknown kind 'Q'"));
  CHECK_THROWS_WITH(parse_schedule_csv("1F0,1B0\n0F0,0B0\n", "u.csv", 2, 1, 1),
                    Contains("u.csv:1: action '1F0' in the list of rank 0") &&
                        Contains("stage 1 lives on rank 1"));
  CHECK_THROWS_WITH(parse_schedule_csv("0F0,0F1\n1F0\n", "u.csv", 2, 1, 1),
                    Contains("u.csv:1: action '0F1'") && Contains("micro-batch 1 does not exist"));
  CHECK_THROWS_WITH(parse_schedule_csv("0F0,4F0\n1F0\n", "u.csv", 2, 2, 1),
                    Contains("u.csv:1: action '4F0'") && Contains("stage 4 does not exist"));
  CHECK_THROWS_WITH(parse_schedule_csv("0F0,0SEND_F0\n", "u.csv", 1, 2, 1),
                    Contains("u.csv:1: action '0SEND_F0'") && Contains("handed over locally"));
  CHECK_THROWS_WITH(parse_schedule_csv("0F0\n", "u.csv", 2, 1, 1),
                    Contains("u.csv: has rows for 1 ranks, expected 2"));
  CHECK_THROWS_WITH(parse_schedule_csv("0F0\n1F0\n2F0\n", "u.csv", 2, 1, 1),
                    Contains("u.csv:3: a row for rank 2, but the schedule has 2 ranks"));
  CHECK_THROWS_WITH(load_schedule_csv(kScheduleDir + "no_such_file.csv", 2, 1, 1),
                    Contains("no_such_file.csv"));
}

TEST_CASE("Schedule files load from disk", "[schedule]") {
  const Schedule s = load_schedule_csv(kScheduleDir + "circular_wait.csv", 2, 1, 2);
  CHECK(s.name == "csv:" + kScheduleDir + "circular_wait.csv");
  CHECK(to_string(s.actions[1][0]) == "1F1");
  CHECK(load_schedule_text(kScheduleDir + "1f1b_p4_m8.txt") == one_f_one_b(4, 8));
}

TEST_CASE("Generated schedules equal their golden files", "[schedule]") {
  check_golden("1f1b_p4_m8.txt", to_text(one_f_one_b(4, 8)));
  // The interleaved order with a partial last group (m % p != 0): see generators.cpp.
  check_golden("interleaved_p2_v2_m5.txt", to_text(interleaved_1f1b(2, 2, 5)));
  // The V placement: rank r holds stages r and 2p-1-r, and the header says so.
  check_golden("zbv_p4_m8.txt", to_text(zero_bubble_v(4, 8)));
}
