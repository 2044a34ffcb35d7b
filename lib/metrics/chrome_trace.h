// The one trace writer: Chrome trace JSON (chrome://tracing, ui.perfetto.dev) for both the
// simulated schedule (`pptrain plan --trace`) and the measured per-rank timelines
// (trace-rank<N>.json), so the two open side by side.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pptrain {

struct TraceEvent {
  int pid = 0;  // rank
  int tid = 0;  // 0 compute, 1 communication / waits
  std::string name;
  double start_us = 0.0, duration_us = 0.0;
  std::string category;              // "F", "B", "SEND_F", "wait", ... (filterable in Perfetto)
  std::map<std::string, int> args;   // e.g. stage, micro_batch
};

// A complete JSON document: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData":
// {...}}, with process_name ("rank N") and thread_name metadata events per pid.
std::string chrome_trace_json(const std::vector<TraceEvent>& events,
                              const std::map<std::string, std::string>& other_data = {});

}  // namespace pptrain
