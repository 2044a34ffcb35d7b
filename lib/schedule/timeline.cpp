#include "schedule/timeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "metrics/chrome_trace.h"

namespace pptrain::schedule {
namespace {

constexpr int kMaxGridSlots = 4000;  // longer timelines get wider slots

}  // namespace

std::string format_grid(const Schedule& schedule, const SimResult* sim) {
  SimResult own;
  if (sim == nullptr) {
    own = simulate(schedule);
    sim = &own;
  }
  const int p = sim->ranks;
  double slot = 0.0;  // shortest compute duration: one F fills one row
  for (const auto& timeline : sim->timelines) {
    for (const TimedAction& t : timeline) {
      const double d = t.end - t.start;
      if (is_compute(t.action.kind) && d > 0 && (slot == 0.0 || d < slot)) slot = d;
    }
  }
  if (slot == 0.0) slot = 1.0;
  slot = std::max(slot, sim->makespan / kMaxGridSlots);
  const int slots = static_cast<int>(std::ceil(sim->makespan / slot - 1e-9));

  std::vector<std::vector<std::string>> cells(slots, std::vector<std::string>(p, "."));
  for (int r = 0; r < p; ++r) {
    for (const TimedAction& t : sim->timelines[r]) {
      if (!is_compute(t.action.kind) || t.end <= t.start) continue;
      // Rounding to the nearest slot boundary absorbs round-off in sums of costs like 1/3.
      const int first = static_cast<int>(std::floor(t.start / slot + 0.5));
      const int last = std::max(first, static_cast<int>(std::floor(t.end / slot + 0.5)) - 1);
      for (int k = first; k <= last && k < slots; ++k) {
        if (cells[k][r] == ".") cells[k][r] = k == first ? to_string(t.action) : "|";
      }
    }
  }

  std::vector<std::size_t> width(p);
  for (int r = 0; r < p; ++r) {
    width[r] = fmt::format("rank {}", r).size();
    for (const auto& row : cells) width[r] = std::max(width[r], row[r].size());
  }
  const int time_width = std::max<int>(4, static_cast<int>(std::to_string(slots).size()));
  auto line = [&](const std::string& label, const std::vector<std::string>& row) {
    std::string out = fmt::format("{:>{}}", label, time_width);
    for (int r = 0; r < p; ++r) out += fmt::format("  {:<{}}", row[r], width[r]);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };

  std::string out = fmt::format(
      "{} (p={}, v={}, m={}): makespan {:g}, bubble {:.2f}%, one row = {:g} time unit{}\n",
      sim->name, p, sim->virtual_stages, sim->micro_batches, sim->makespan, 100.0 * sim->bubble,
      slot, slot == 1.0 ? "" : "s");
  std::vector<std::string> header(p);
  for (int r = 0; r < p; ++r) header[r] = fmt::format("rank {}", r);
  out += line("time", header);
  for (int k = 0; k < slots; ++k) out += line(std::to_string(k), cells[k]);
  out += "bubble per rank:";
  for (double b : sim->bubble_per_rank) out += fmt::format(" {:.2f}%", 100.0 * b);
  out += "\npeak in-flight micro-batches per stage:";
  for (int n : sim->peak_in_flight) out += fmt::format(" {}", n);
  out += "\n";
  return out;
}

std::string to_chrome_trace(const SimResult& sim) {
  constexpr double kUsPerUnit = 1000.0;
  std::vector<TraceEvent> events;
  for (int r = 0; r < sim.ranks; ++r) {
    for (const TimedAction& t : sim.timelines[r]) {
      events.push_back({r, is_compute(t.action.kind) ? 0 : 1, to_string(t.action),
                        t.start * kUsPerUnit, (t.end - t.start) * kUsPerUnit,
                        std::string(kind_code(t.action.kind)),
                        {{"stage", t.action.stage}, {"micro_batch", t.action.micro_batch}}});
    }
  }
  return chrome_trace_json(events, {{"schedule", sim.name},
                                    {"makespan", fmt::format("{}", sim.makespan)},
                                    {"bubble", fmt::format("{}", sim.bubble)}});
}

}  // namespace pptrain::schedule
