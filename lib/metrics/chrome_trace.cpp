#include "metrics/chrome_trace.h"

#include <nlohmann/json.hpp>

#include <set>

namespace pptrain {

std::string chrome_trace_json(const std::vector<TraceEvent>& events,
                              const std::map<std::string, std::string>& other_data) {
  nlohmann::json list = nlohmann::json::array();
  std::set<int> pids;
  for (const TraceEvent& e : events) pids.insert(e.pid);
  for (int pid : pids) {
    list.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"tid", 0},
                    {"args", {{"name", "rank " + std::to_string(pid)}}}});
    list.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", 0},
                    {"args", {{"name", "compute"}}}});
    list.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", 1},
                    {"args", {{"name", "communication"}}}});
  }
  for (const TraceEvent& e : events) {
    nlohmann::json x = {{"ph", "X"}, {"name", e.name}, {"pid", e.pid}, {"tid", e.tid},
                        {"ts", e.start_us}, {"dur", e.duration_us}};
    if (!e.category.empty()) x["cat"] = e.category;
    if (!e.args.empty()) x["args"] = e.args;
    list.push_back(std::move(x));
  }
  nlohmann::json doc = {{"traceEvents", list}, {"displayTimeUnit", "ms"}};
  if (!other_data.empty()) doc["otherData"] = other_data;
  return doc.dump();
}

}  // namespace pptrain
