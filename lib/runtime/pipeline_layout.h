// Who is who in a job: world = pipeline ranks (pp) x data-parallel replicas (dp).
// Data-parallel peers are adjacent world ranks (world = pp_rank * dp + dp_rank), so on a
// node they share memory bandwidth rather than a slower link (DESIGN.md section 5).
// Rank pp_rank holds the stages pp_rank, pp_rank + pp, ... (v chunks, loop placement).
// Pure: no MPI, so it is tested without a launcher.
#pragma once

#include <vector>

#include "config/config.h"

namespace pptrain {

struct PipelineLayout {
  int pp = 1;  // pipeline ranks per replica (pipeline.stages)
  int dp = 1;  // replicas (parallel.data)
  int v = 1;   // chunks (virtual stages) per pipeline rank
  int world_rank = 0;
  int pp_rank = 0;
  int dp_rank = 0;

  static PipelineLayout make(const Config& config, int world_rank, int world_size);

  int stages() const { return pp * v; }
  int world_rank_of(int pipeline_rank, int replica) const { return pipeline_rank * dp + replica; }
  int rank_of_stage(int stage) const { return stage % pp; }  // pipeline rank
  std::vector<int> local_stages() const;                      // ascending
  std::vector<int> pipeline_world_ranks() const;  // this replica's pipeline, by pp_rank
  std::vector<int> replica_world_ranks() const;   // this stage's replicas, by dp_rank
  // The world ranks this rank exchanges activations and gradients with: the previous and
  // next pipeline rank of its replica (the ring wraps for interleaved chunks); none for pp 1.
  std::vector<int> neighbour_world_ranks() const;
  bool holds_stage(int stage) const { return rank_of_stage(stage) == pp_rank; }
};

}  // namespace pptrain
