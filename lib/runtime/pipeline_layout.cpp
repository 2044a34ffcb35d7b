#include "runtime/pipeline_layout.h"

#include <algorithm>

#include "core/error.h"

namespace pptrain {

schedule::StagePlacement stage_placement(const PipelineConfig& pipeline) {
  if (pipeline.placement == "vee") return schedule::StagePlacement::Vee;
  if (pipeline.placement == "loop") return schedule::StagePlacement::Loop;
  return schedule::placement_of_schedule(pipeline.schedule);
}

PipelineLayout PipelineLayout::make(const Config& config, int world_rank, int world_size) {
  PipelineLayout l;
  l.pp = config.pipeline.stages;
  l.dp = config.parallel.data;
  l.v = config.pipeline.virtual_stages;
  l.placement = stage_placement(config.pipeline);
  PPT_CHECK(l.pp * l.dp == world_size,
            "pipeline.stages ({}) x parallel.data ({}) = {} ranks, but the job has {}", l.pp, l.dp,
            l.pp * l.dp, world_size);
  PPT_CHECK(0 <= world_rank && world_rank < world_size, "rank {} outside a world of {}", world_rank,
            world_size);
  l.world_rank = world_rank;
  l.pp_rank = world_rank / l.dp;
  l.dp_rank = world_rank % l.dp;
  return l;
}

std::vector<int> PipelineLayout::local_stages() const {
  std::vector<int> s;
  for (int stage = 0; stage < stages(); ++stage) {
    if (holds_stage(stage)) s.push_back(stage);
  }
  return s;
}

std::vector<int> PipelineLayout::pipeline_world_ranks() const {
  std::vector<int> r;
  for (int p = 0; p < pp; ++p) r.push_back(world_rank_of(p, dp_rank));
  return r;
}

std::vector<int> PipelineLayout::replica_world_ranks() const {
  std::vector<int> r;
  for (int d = 0; d < dp; ++d) r.push_back(world_rank_of(pp_rank, d));
  return r;
}

std::vector<int> PipelineLayout::neighbour_world_ranks() const {
  std::vector<int> previous, next;  // pipeline ranks
  for (int stage : local_stages()) {
    if (stage > 0 && !holds_stage(stage - 1)) previous.push_back(rank_of_stage(stage - 1));
    if (stage + 1 < stages() && !holds_stage(stage + 1)) next.push_back(rank_of_stage(stage + 1));
  }
  std::vector<int> out;
  for (const std::vector<int>* side : {&previous, &next}) {
    for (int r : *side) {
      const int world = world_rank_of(r, dp_rank);
      if (std::find(out.begin(), out.end(), world) == out.end()) out.push_back(world);
    }
  }
  return out;
}

}  // namespace pptrain
