#include "runtime/pipeline_layout.h"

#include "core/error.h"

namespace pptrain {

PipelineLayout PipelineLayout::make(const Config& config, int world_rank, int world_size) {
  PipelineLayout l;
  l.pp = config.pipeline.stages;
  l.dp = config.parallel.data;
  l.v = config.pipeline.virtual_stages;
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
  for (int c = 0; c < v; ++c) s.push_back(c * pp + pp_rank);
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
  std::vector<int> out;
  if (pp == 1) return out;
  out.push_back(world_rank_of((pp_rank + pp - 1) % pp, dp_rank));
  const int next = world_rank_of((pp_rank + 1) % pp, dp_rank);
  if (next != out.front()) out.push_back(next);
  return out;
}

}  // namespace pptrain
