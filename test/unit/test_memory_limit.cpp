// pipeline.memory_limit_gib: a cost-based partition takes the split with the smallest
// bottleneck among those whose every rank's memory plan fits (checked against brute force over
// every split, with plan_memory as the judge), and a plan over the limit is refused naming the
// key, the ranks and what would fit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/memory_plan.h"
#include "runtime/training_plan.h"

using namespace pptrain;
using Catch::Contains;

namespace {

Config small_config(int n_layer, int stages, const std::string& schedule, int m, const std::string& partition,
                    const std::string& recompute) {
  Config c;
  c.model.vocab_size = 64;
  c.model.seq_len = 32;  // activations outweigh parameters, as in real runs: stashes decide
  c.model.n_layer = n_layer;
  c.model.n_head = 2;
  c.model.channels = 16;
  c.pipeline.stages = stages;
  c.pipeline.schedule = schedule;
  c.pipeline.micro_batches = m;
  c.pipeline.micro_batch_size = 2;
  c.pipeline.partition = partition;
  c.pipeline.recompute = recompute;
  return c;
}

// Every split of L layers into S non-empty contiguous ranges.
void for_each_split(int L, int S, const std::function<void(const std::vector<StageRange>&)>& f) {
  std::vector<StageRange> ranges;
  std::function<void(int, int)> go = [&](int first, int left) {
    if (left == 1) {
      ranges.push_back({first, L});
      f(ranges);
      ranges.pop_back();
      return;
    }
    for (int end = first + 1; end <= L - (left - 1); ++end) {
      ranges.push_back({first, end});
      go(end, left - 1);
      ranges.pop_back();
    }
  };
  go(0, S);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

double bottleneck(const std::vector<StageRange>& ranges, const std::vector<double>& costs) {
  const std::vector<double> per_stage = stage_costs(ranges, costs);
  return *std::max_element(per_stage.begin(), per_stage.end());
}

void set_limit_bytes(Config& c, std::size_t bytes) {
  c.pipeline.memory_limit_gib = (static_cast<double>(bytes) + 0.5) / kGiB;
}

}  // namespace

TEST_CASE("A memory limit picks the split with the smallest bottleneck that fits, against brute force",
          "[memory][partition]") {
  int cases = 0, steered = 0;
  for (const char* schedule : {"1f1b", "gpipe", "zb-h1"}) {
    for (const char* partition : {"parameters", "flops"}) {
      for (const char* recompute : {"none", "full"}) {
        for (const auto& [n_layer, stages] : std::vector<std::pair<int, int>>{{4, 2}, {4, 3}, {6, 4}, {3, 5}}) {
          Config c = small_config(n_layer, stages, schedule, 4, partition, recompute);
          CAPTURE(schedule, partition, recompute, n_layer, stages);
          TrainingPlan plan = make_training_plan(c);
          const std::vector<double> costs = partition_costs(c, plan.shape);
          // Every split's largest planned rank total and bottleneck, judged by plan_memory.
          struct Split {
            std::vector<StageRange> ranges;
            std::size_t largest;
            double cost;
          };
          std::vector<Split> splits;
          for_each_split(plan.shape.num_layers(), stages, [&](const std::vector<StageRange>& ranges) {
            TrainingPlan p = plan;
            p.partition = ranges;
            splits.push_back({ranges, largest_rank_bytes(plan_memory(c, p)), bottleneck(ranges, costs)});
          });
          std::vector<std::size_t> limits;
          for (const Split& s : splits) limits.push_back(s.largest);
          std::sort(limits.begin(), limits.end());
          limits.erase(std::unique(limits.begin(), limits.end()), limits.end());
          for (std::size_t limit : limits) {
            set_limit_bytes(c, limit);
            REQUIRE(memory_limit_bytes(c) == limit);
            double best = std::numeric_limits<double>::infinity();
            for (const Split& s : splits) {
              if (s.largest <= limit) best = std::min(best, s.cost);
            }
            const TrainingPlan limited = make_training_plan(c);
            CAPTURE(limit, best);
            CHECK(largest_rank_bytes(plan_memory(c, limited)) <= limit);
            CHECK(bottleneck(limited.partition, costs) == best);
            CHECK(limited.partition_without_limit.empty() == (limited.partition == plan.partition));
            if (!limited.partition_without_limit.empty()) {
              CHECK(limited.partition_without_limit == plan.partition);
              ++steered;
            }
            ++cases;
          }
          // Under the smallest total any split reaches: refused, naming that total.
          set_limit_bytes(c, limits.front() - 1);
          CHECK_THAT(error_of([&] { make_training_plan(c); }),
                     Contains("pipeline.memory_limit_gib (default): no split of the") &&
                         Contains("the best reaches " + memory_size(limits.front()) + " on its largest rank"));
        }
      }
    }
  }
  CHECK(cases > 100);
  CHECK(steered > 20);  // the limit moved layers in many of them
}

TEST_CASE("A plan over the memory limit is refused with the ranks over it and what would fit", "[memory]") {
  Config c = small_config(6, 3, "1f1b", 6, "uniform", "none");
  const TrainingPlan uniform = make_training_plan(c);
  const MemoryPlan memory = plan_memory(c, uniform);
  // Just under rank 0's total (1F1B's first stage keeps the most stashes).
  REQUIRE(&largest_rank(memory) == &memory.ranks[0]);
  set_limit_bytes(c, memory.ranks[0].total() - 1);
  CHECK_THAT(error_of([&] { make_training_plan(c); }),
             Contains("pipeline.memory_limit_gib (default): the memory plan puts rank 0 (") &&
                 Contains("--set pipeline.partition=flops (largest rank "));
  // flops steered under the same limit: the rank's layers move to the later stages.
  c.pipeline.partition = "flops";
  const TrainingPlan flops = make_training_plan(c);
  CHECK(largest_rank_bytes(plan_memory(c, flops)) < memory.ranks[0].total());
  CHECK(flops.partition.front().num_layers() < flops.partition.back().num_layers());
  CHECK_THAT(describe_training_plan(c, flops), Contains("(pipeline.memory_limit_gib): layers per stage "));
  // Interleaved (a rank holds several stages): checked, not steered.
  c.pipeline.schedule = "interleaved";
  c.pipeline.virtual_stages = 2;
  c.pipeline.micro_batches = 3;
  Config unlimited = c;
  unlimited.pipeline.memory_limit_gib = 0.0;
  set_limit_bytes(c, largest_rank_bytes(plan_memory(unlimited, make_training_plan(unlimited))) - 1);
  CHECK_THAT(error_of([&] { make_training_plan(c); }), Contains("pipeline.memory_limit_gib (default): the memory plan puts rank"));
  // A limit every split meets leaves the method's own split.
  c.pipeline.memory_limit_gib = 64.0;
  const TrainingPlan roomy = make_training_plan(c);
  CHECK(roomy.partition == make_training_plan(unlimited).partition);
  CHECK(roomy.partition_without_limit.empty());
  CHECK_THAT(describe_training_plan(c, roomy), Contains("the split is the method's own, and every rank fits"));
}
