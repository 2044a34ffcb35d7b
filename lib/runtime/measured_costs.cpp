#include "runtime/measured_costs.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "core/error.h"
#include "metrics/throughput.h"
#include "schedule/action.h"

namespace pptrain {

namespace fs = std::filesystem;

schedule::ActionCosts measured_stage_costs(const std::string& run_dir, int stages) {
  std::map<int, std::map<char, std::vector<double>>> ms;  // stage -> kind -> durations
  int files = 0;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(run_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("trace-rank", 0) != 0 || entry.path().extension() != ".json") continue;
    ++files;
    nlohmann::json doc;
    try {
      std::ifstream in(entry.path());
      doc = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      PPT_THROW("--costs run:{}: '{}' is not a trace: {}", run_dir, entry.path().string(), e.what());
    }
    for (const nlohmann::json& event : doc.value("traceEvents", nlohmann::json::array())) {
      if (event.value("cat", "") != "compute" || !event.contains("dur")) continue;
      schedule::Action a;
      std::string error;
      if (!schedule::try_parse_action(event.value("name", ""), a, error)) continue;
      ms[a.stage][schedule::kind_code(a.kind).front()].push_back(event["dur"].get<double>() / 1000.0);
    }
  }
  PPT_CHECK(!ec, "--costs run:{}: cannot read the directory: {}", run_dir, ec.message());
  PPT_CHECK(files > 0, "--costs run:{}: no trace-rank<N>.json in it (train with logging.trace: true)", run_dir);
  PPT_CHECK(!ms.empty() && ms.rbegin()->first < stages,
            "--costs run:{}: its traces hold stages up to {}, this plan has {}: per-stage costs need "
            "the same stages and partition", run_dir, ms.empty() ? -1 : ms.rbegin()->first, stages);
  schedule::ActionCosts costs;
  for (int s = 0; s < stages; ++s) {
    auto& kinds = ms[s];
    PPT_CHECK(!kinds['F'].empty(), "--costs run:{}: no forward of stage {} in its traces: per-stage "
              "costs need the same stages and partition", run_dir, s);
    const double f = median(kinds['F']);
    double i = 0.0, w = 0.0;
    if (!kinds['I'].empty() && !kinds['W'].empty()) {
      i = median(kinds['I']);
      w = median(kinds['W']);
    } else {
      PPT_CHECK(!kinds['B'].empty(), "--costs run:{}: no backward of stage {} in its traces", run_dir, s);
      i = w = median(kinds['B']) / 2.0;
    }
    costs.forward_per_stage.push_back(f);
    costs.backward_input_per_stage.push_back(i);
    costs.backward_weight_per_stage.push_back(w);
    costs.backward_per_stage.push_back(i + w);
  }
  return costs;
}

}  // namespace pptrain
