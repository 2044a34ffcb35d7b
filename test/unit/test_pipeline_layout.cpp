// Who holds what: world = pp x dp with data-parallel peers adjacent, stages placed round
// the pipeline ranks (loop placement for virtual stages, V for zbv).
#include <catch2/catch.hpp>
#include <string>

#include "runtime/pipeline_layout.h"

using namespace pptrain;

namespace {
Config layout_config(int pp, int dp, int v, const std::string& schedule = "1f1b") {
  Config c;
  c.pipeline.schedule = schedule;
  c.pipeline.stages = pp;
  c.parallel.data = dp;
  c.pipeline.virtual_stages = v;
  return c;
}
}  // namespace

TEST_CASE("Ranks map to pipeline and data-parallel positions", "[layout]") {
  const Config c = layout_config(2, 2, 1);
  const PipelineLayout r3 = PipelineLayout::make(c, 3, 4);
  CHECK(r3.pp_rank == 1);
  CHECK(r3.dp_rank == 1);
  CHECK(r3.pipeline_world_ranks() == std::vector<int>{1, 3});
  CHECK(r3.replica_world_ranks() == std::vector<int>{2, 3});
  const PipelineLayout r0 = PipelineLayout::make(c, 0, 4);
  CHECK(r0.pipeline_world_ranks() == std::vector<int>{0, 2});
  CHECK(r0.replica_world_ranks() == std::vector<int>{0, 1});
}

TEST_CASE("Virtual stages are placed round the ranks", "[layout]") {
  const PipelineLayout l = PipelineLayout::make(layout_config(4, 1, 2), 1, 4);
  CHECK(l.stages() == 8);
  CHECK(l.local_stages() == std::vector<int>{1, 5});
  CHECK(l.holds_stage(5));
  CHECK_FALSE(l.holds_stage(6));
  CHECK(l.rank_of_stage(7) == 3);
}

TEST_CASE("zbv places stages in a V: rank r holds r and 2p-1-r", "[layout]") {
  const Config c = layout_config(4, 1, 2, "zbv");
  CHECK(PipelineLayout::make(c, 0, 4).local_stages() == std::vector<int>{0, 7});
  CHECK(PipelineLayout::make(c, 1, 4).local_stages() == std::vector<int>{1, 6});
  CHECK(PipelineLayout::make(c, 3, 4).local_stages() == std::vector<int>{3, 4});
  CHECK(PipelineLayout::make(c, 3, 4).rank_of_stage(5) == 2);
  // No ring: the ends have one neighbour, and rank 3 hands stage 3 to stage 4 itself.
  CHECK(PipelineLayout::make(c, 0, 4).neighbour_world_ranks() == std::vector<int>{1});
  CHECK(PipelineLayout::make(c, 2, 4).neighbour_world_ranks() == std::vector<int>{1, 3});
  CHECK(PipelineLayout::make(c, 3, 4).neighbour_world_ranks() == std::vector<int>{2});
}

TEST_CASE("Each rank connects to its pipeline neighbours only", "[layout]") {
  // pp 4 x dp 2: world rank = pp_rank * 2 + dp_rank; replica 1 is world ranks 1, 3, 5, 7.
  const Config c = layout_config(4, 2, 1);
  CHECK(PipelineLayout::make(c, 3, 8).neighbour_world_ranks() == std::vector<int>{1, 5});
  CHECK(PipelineLayout::make(c, 1, 8).neighbour_world_ranks() == std::vector<int>{3});
  // With virtual stages the ring wraps: stage 4 on rank 0 follows stage 3 on rank 3.
  CHECK(PipelineLayout::make(layout_config(4, 2, 2, "interleaved"), 1, 8).neighbour_world_ranks() ==
        std::vector<int>{7, 3});
  CHECK(PipelineLayout::make(layout_config(2, 1, 1), 0, 2).neighbour_world_ranks() == std::vector<int>{1});
  CHECK(PipelineLayout::make(layout_config(1, 4, 1), 2, 4).neighbour_world_ranks().empty());
}

TEST_CASE("A launch that does not fit the config is refused", "[layout]") {
  CHECK_THROWS_WITH(PipelineLayout::make(layout_config(2, 2, 1), 0, 3),
                    Catch::Contains("pipeline.stages (2) x parallel.data (2) = 4 ranks, but the job has 3"));
}
