#include "runtime/schedule_comparison.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "config/config_loader.h"
#include "core/error.h"
#include "runtime/memory_plan.h"
#include "runtime/training_plan.h"

namespace pptrain {

std::string compare_schedules(const std::string& config_path, const std::vector<std::string>& overrides,
                              const std::string& costs) {
  const Config base = load_config(config_path, overrides);
  const int v = std::max(2, base.pipeline.virtual_stages);
  std::vector<std::pair<std::string, int>> candidates = {
      {"gpipe", 1}, {"1f1b", 1}, {"zb-h1", 1}, {"interleaved", v}, {"interleaved-zb", v}, {"zbv", 2}};
  if (base.pipeline.schedule.rfind("csv:", 0) == 0) {
    candidates.emplace_back(base.pipeline.schedule, base.pipeline.virtual_stages);
  }
  std::string out = fmt::format(
      "schedules for {} ranks, {} micro-batches of {} sequences, simulated with {}; "
      "memory: the largest rank's plan ({} memory, {}):\n",
      base.pipeline.stages, base.pipeline.micro_batches, base.pipeline.micro_batch_size,
      costs == "model"                 ? std::string("each stage's modelled FLOPs")
      : costs.rfind("run:", 0) == 0 ? "each stage's times measured by " + costs.substr(4)
                                    : describe_costs(costs, {}),
      base.runtime.device == "cuda" ? "GPU" : "host",
      base.runtime.device == "cuda" ? base.runtime.precision : "fp32");
  out += "  schedule             | v |       step |  bubble | in flight | memory MiB | activations MiB\n";
  for (const auto& [name, chunks] : candidates) {
    std::vector<std::string> set = overrides;
    set.push_back("pipeline.schedule=" + name);
    set.push_back(fmt::format("pipeline.virtual_stages={}", chunks));
    const std::string label = fmt::format("  {:<20} | {} |", name.size() > 20 ? name.substr(0, 17) + "..." : name, chunks);
    try {
      const Config config = load_config(config_path, set);
      const TrainingPlan plan = make_training_plan(config);
      const schedule::SimResult sim = schedule::simulate(plan.lowered, plan_costs(config, plan, costs));
      const MemoryPlan memory = plan_memory(config, plan);
      const RankMemoryPlan& largest = largest_rank(memory);
      const int in_flight = *std::max_element(sim.peak_in_flight.begin(), sim.peak_in_flight.end());
      out += fmt::format("{} {:>10.4g} | {:>6.2f}% | {:>9} | {:>10.1f} | {:>15.1f}\n", label, sim.makespan,
                         100.0 * sim.bubble, in_flight, largest.total() / kMiB,
                         largest.bytes[static_cast<std::size_t>(MemCategory::Activations)] / kMiB);
    } catch (const Error& e) {
      std::string why = e.what();
      if (const std::size_t nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
      out += fmt::format("{} cannot run: {}\n", label, why);
    }
  }
  return out;
}

}  // namespace pptrain
