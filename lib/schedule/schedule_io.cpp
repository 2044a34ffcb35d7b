#include "schedule/schedule_io.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace pptrain::schedule {
namespace {

struct Line {
  int number = 0;         // 1-based, for messages
  std::string_view text;  // without comment, trimmed; never empty
};

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// The lines that hold something once `#` comments and blank lines are dropped.
std::vector<Line> content_lines(std::string_view text) {
  std::vector<Line> lines;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    line = trim(line.substr(0, line.find('#')));
    if (!line.empty()) lines.push_back({number, line});
  }
  return lines;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> words;
  for (std::string_view w : split(s, ' ')) {
    for (std::string_view part : split(w, '\t')) {
      if (!part.empty()) words.push_back(part);
    }
  }
  return words;
}

// One token of rank `rank`'s list, checked against the schedule's shape.
Action parse_token(std::string_view source, const Line& line, std::string_view token,
                   const Schedule& s, int rank) {
  Action action;
  std::string error;
  if (!try_parse_action(token, action, error)) {
    PPT_THROW("{}:{}: {}", source, line.number, error);
  }
  const std::string misfit = action_misfit(s, rank, action);
  if (!misfit.empty()) {
    PPT_THROW("{}:{}: action '{}' in the list of rank {}: {}", source, line.number, token, rank,
              misfit);
  }
  return action;
}

void check_shape_at(std::string_view source, int line, int p, int v, int m,
                    StagePlacement placement = StagePlacement::Loop) {
  try {
    check_shape(p, v, m, placement);
  } catch (const Error& e) {
    PPT_THROW("{}:{}: {}", source, line, e.what());
  }
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  PPT_CHECK(in.good(), "cannot open {} '{}'", what, path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  PPT_CHECK(!in.bad(), "cannot read {} '{}'", what, path);
  return buffer.str();
}

// "key=<int>" -> the int; throws naming the line and the token otherwise.
int header_value(std::string_view source, int line, std::string_view token, std::string_view key) {
  int value = 0;
  const bool has_key =
      token.size() > key.size() && token.substr(0, key.size()) == key && token[key.size()] == '=';
  const std::string_view digits = has_key ? token.substr(key.size() + 1) : std::string_view();
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (!has_key || ec != std::errc() || end != digits.data() + digits.size()) {
    PPT_THROW("{}:{}: expected {}=<number>, got '{}'", source, line, key, token);
  }
  return value;
}

}  // namespace

std::string to_text(const Schedule& s) {
  std::string out = fmt::format("schedule {} ranks={} virtual_stages={} micro_batches={}", s.name,
                                s.ranks, s.virtual_stages, s.micro_batches);
  // Written only when it is not the default, so loop-placed files read as before.
  if (s.placement != StagePlacement::Loop) out += fmt::format(" placement={}", placement_name(s.placement));
  out += "\n";
  for (int r = 0; r < static_cast<int>(s.actions.size()); ++r) {
    out += fmt::format("rank {}:", r);
    for (const Action& a : s.actions[r]) out += fmt::format(" {}", to_string(a));
    out += "\n";
  }
  return out;
}

Schedule parse_schedule_text(std::string_view text, std::string_view source) {
  const std::vector<Line> lines = content_lines(text);
  PPT_CHECK(!lines.empty(),
            "{}: empty; expected 'schedule <name> ranks=<p> virtual_stages=<v> "
            "micro_batches=<m>' and one 'rank <r>: ...' line per rank",
            source);

  // Header: schedule <name> ranks=<p> virtual_stages=<v> micro_batches=<m>; the name may be
  // empty or hold spaces (a csv: path), so it is everything between the first and last words.
  const Line& head = lines.front();
  const std::vector<std::string_view> words = split_words(head.text);
  if (words.size() < 4 || words.front() != "schedule") {
    PPT_THROW(
        "{}:{}: expected 'schedule <name> ranks=<p> virtual_stages=<v> micro_batches=<m>', "
        "got '{}'",
        source, head.number, head.text);
  }
  std::size_t n = words.size();
  Schedule s;
  const std::string_view placement_key = "placement=";
  if (words.back().substr(0, placement_key.size()) == placement_key) {
    const std::string_view value = words.back().substr(placement_key.size());
    if (value == placement_name(StagePlacement::Vee)) {
      s.placement = StagePlacement::Vee;
    } else if (value != placement_name(StagePlacement::Loop)) {
      PPT_THROW("{}:{}: expected placement=loop or placement=vee, got '{}'", source, head.number,
                words.back());
    }
    --n;
  }
  if (n < 4) {
    PPT_THROW(
        "{}:{}: expected 'schedule <name> ranks=<p> virtual_stages=<v> micro_batches=<m>', "
        "got '{}'",
        source, head.number, head.text);
  }
  s.ranks = header_value(source, head.number, words[n - 3], "ranks");
  s.virtual_stages = header_value(source, head.number, words[n - 2], "virtual_stages");
  s.micro_batches = header_value(source, head.number, words[n - 1], "micro_batches");
  check_shape_at(source, head.number, s.ranks, s.virtual_stages, s.micro_batches, s.placement);
  const std::size_t name_begin = words[0].data() + words[0].size() - head.text.data();
  const std::size_t name_end = words[n - 3].data() - head.text.data();
  s.name = std::string(trim(head.text.substr(name_begin, name_end - name_begin)));
  s.actions.resize(s.ranks);

  int rank = 0;
  for (std::size_t i = 1; i < lines.size(); ++i, ++rank) {
    const Line& line = lines[i];
    const std::string expected = fmt::format("rank {}:", rank);
    // What stands where "rank <r>:" should: up to the first colon, at most 40 characters.
    const std::size_t colon = line.text.find(':');
    const std::string_view label = line.text.substr(
        0,
        std::min<std::size_t>(colon == std::string_view::npos ? line.text.size() : colon + 1, 40));
    if (rank >= s.ranks) {
      PPT_THROW("{}:{}: '{}' after the lines of all {} ranks", source, line.number, label, s.ranks);
    }
    if (line.text.substr(0, expected.size()) != expected) {
      PPT_THROW("{}:{}: expected '{}' (one line per rank, in order), got '{}'", source, line.number,
                expected, label);
    }
    for (std::string_view token : split_words(line.text.substr(expected.size()))) {
      s.actions[rank].push_back(parse_token(source, line, token, s, rank));
    }
  }
  PPT_CHECK(rank == s.ranks, "{}: has lines for {} ranks, expected {} (ranks={})", source, rank,
            s.ranks, s.ranks);
  return s;
}

Schedule load_schedule_text(const std::string& path) {
  return parse_schedule_text(read_file(path, "schedule file"), path);
}

std::string to_csv(const Schedule& s) {
  std::string out =
      fmt::format("# pptrain schedule {}: row r = rank r's actions in order\n", describe(s));
  for (const auto& list : s.actions) {
    std::vector<std::string> cells;
    for (const Action& a : list) cells.push_back(to_string(a));
    out += cells.empty() ? std::string(",") : fmt::format("{}", fmt::join(cells, ","));
    out += '\n';
  }
  return out;
}

Schedule parse_schedule_csv(std::string_view text, std::string_view source, int ranks,
                            int virtual_stages, int micro_batches, StagePlacement placement) {
  check_shape(ranks, virtual_stages, micro_batches, placement);
  Schedule s;
  s.placement = placement;
  s.name = fmt::format("csv:{}", source);
  s.ranks = ranks;
  s.virtual_stages = virtual_stages;
  s.micro_batches = micro_batches;
  s.actions.resize(ranks);
  int rank = 0;
  for (const Line& line : content_lines(text)) {
    if (rank >= ranks) {
      PPT_THROW(
          "{}:{}: a row for rank {}, but the schedule has {} ranks (pipeline.stages); "
          "row r holds rank r's actions",
          source, line.number, rank, ranks);
    }
    for (std::string_view cell : split(line.text, ',')) {
      cell = trim(cell);
      if (!cell.empty()) s.actions[rank].push_back(parse_token(source, line, cell, s, rank));
    }
    ++rank;
  }
  PPT_CHECK(rank == ranks,
            "{}: has rows for {} ranks, expected {} (pipeline.stages); row r "
            "holds rank r's actions",
            source, rank, ranks);
  return s;
}

Schedule load_schedule_csv(const std::string& path, int ranks, int virtual_stages,
                           int micro_batches, StagePlacement placement) {
  return parse_schedule_csv(read_file(path, "schedule CSV file"), path, ranks, virtual_stages,
                            micro_batches, placement);
}

}  // namespace pptrain::schedule
