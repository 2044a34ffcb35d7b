// Who is who in a job: world = pipeline ranks (pp) x data-parallel replicas (dp).
// Data-parallel peers are adjacent world ranks (world = pp_rank * dp + dp_rank), so on a
// node they share memory bandwidth rather than a slower link (DESIGN.md section 5).
// Which stages a pipeline rank holds is the schedule's placement (schedule.h): loop (pp_rank,
// pp_rank + pp, ...) for every schedule but zbv, whose V puts pp_rank and 2pp-1-pp_rank there.
// Pure: no MPI, so it is tested without a launcher.
#pragma once

#include <vector>

#include "config/config.h"
#include "schedule/schedule.h"

namespace pptrain {

// pipeline.placement resolved: auto is the schedule's own (schedule::placement_of_schedule).
schedule::StagePlacement stage_placement(const PipelineConfig& pipeline);

struct PipelineLayout {
  int pp = 1;  // pipeline ranks per replica (pipeline.stages)
  int dp = 1;  // replicas (parallel.data)
  int v = 1;   // chunks (virtual stages) per pipeline rank
  schedule::StagePlacement placement = schedule::StagePlacement::Loop;
  int world_rank = 0;
  int pp_rank = 0;
  int dp_rank = 0;

  static PipelineLayout make(const Config& config, int world_rank, int world_size);

  int stages() const { return pp * v; }
  int world_rank_of(int pipeline_rank, int replica) const { return pipeline_rank * dp + replica; }
  // The pipeline rank holding `stage`.
  int rank_of_stage(int stage) const { return schedule::rank_of_stage(placement, stage, pp); }
  std::vector<int> local_stages() const;                      // ascending
  std::vector<int> pipeline_world_ranks() const;  // this replica's pipeline, by pp_rank
  std::vector<int> replica_world_ranks() const;   // this stage's replicas, by dp_rank
  // The world ranks this rank exchanges activations and gradients with: the previous and
  // pipeline ranks holding a stage next to one of its own (the ring wraps for interleaved
  // chunks), previous first; none for pp 1.
  std::vector<int> neighbour_world_ranks() const;
  bool holds_stage(int stage) const { return rank_of_stage(stage) == pp_rank; }
};

}  // namespace pptrain
