// Everything about placing ranks that needs no GPU and no launcher: which GPU a local rank
// drives, which transport runtime.comm picks, which world ranks form each pipeline (pp)
// group and each data-parallel (dp) group, and the transport factory on the CPU.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "comm/device_assignment.h"
#include "comm/transport_factory.h"
#include "runtime/pipeline_layout.h"

using namespace pptrain;

TEST_CASE("Local ranks take the GPUs of their node in turn", "[comm]") {
  CHECK(choose_device(0, 8, 8, false) == 0);
  CHECK(choose_device(5, 8, 8, false) == 5);
  CHECK(choose_device(3, 4, 8, false) == 3);  // fewer ranks than GPUs: the first ones
  CHECK(choose_device(0, 1, 1, false) == 0);
  // Shared GPUs (runtime.comm mpi): round robin.
  CHECK(choose_device(5, 8, 4, true) == 1);
  CHECK(choose_device(7, 8, 2, true) == 1);
  CHECK(choose_device(3, 4, 1, true) == 0);
}

TEST_CASE("More ranks than GPUs without sharing names the counts and the fix", "[comm]") {
  CHECK_THROWS_WITH(choose_device(0, 8, 4, false),
                    Catch::Contains("node has 8 ranks but 4 GPUs") && Catch::Contains("runtime.comm: mpi") &&
                        Catch::Contains("at most 4 ranks per node"));
  CHECK_THROWS_WITH(choose_device(0, 2, 0, true), Catch::Contains("sees no GPU") &&
                                                      Catch::Contains("CUDA_VISIBLE_DEVICES"));
  CHECK_THROWS_WITH(choose_device(2, 2, 2, true), Catch::Contains("local rank 2 outside a node of 2"));
}

TEST_CASE("runtime.comm auto picks NCCL only when every rank has its own GPU", "[comm]") {
  // A world of one needs no transport, whatever was asked.
  CHECK(choose_comm("auto", "cpu", 1, false) == "single");
  CHECK(choose_comm("mpi", "cuda", 1, false) == "single");
  CHECK(choose_comm("nccl", "cuda", 1, false) == "single");
  // CPU: always MPI.
  CHECK(choose_comm("auto", "cpu", 4, false) == "mpi");
  CHECK(choose_comm("mpi", "cpu", 4, true) == "mpi");
  // GPU, auto.
  CHECK(choose_comm("auto", "cuda", 8, true) == "nccl");
  CHECK(choose_comm("auto", "cuda", 8, false) == "mpi");
  // GPU, explicit.
  CHECK(choose_comm("mpi", "cuda", 8, true) == "mpi");
  CHECK(choose_comm("mpi", "cuda", 8, false) == "mpi");
  CHECK(choose_comm("nccl", "cuda", 8, true) == "nccl");
}

TEST_CASE("runtime.comm choices that cannot work are refused with the fix", "[comm]") {
  CHECK_THROWS_WITH(choose_comm("nccl", "cuda", 8, false),
                    Catch::Contains("some ranks share a GPU") && Catch::Contains("runtime.comm: mpi"));
  CHECK_THROWS_WITH(choose_comm("nccl", "cpu", 4, false), Catch::Contains("nccl needs runtime.device cuda"));
  CHECK_THROWS_WITH(choose_comm("nccl", "cpu", 1, false), Catch::Contains("nccl needs runtime.device cuda"));
  CHECK_THROWS_WITH(choose_comm("gloo", "cuda", 2, true), Catch::Contains("'gloo' is not one of auto, nccl, mpi"));
  CHECK_THROWS_WITH(choose_comm("auto", "tpu", 2, true), Catch::Contains("'tpu' is not one of cpu, cuda"));
}

namespace {
// Every distinct pipeline (pp) group and data-parallel (dp) group of a pp x dp world, as
// the ranks themselves compute them, in order of their lowest member.
struct Groups {
  std::vector<std::vector<int>> pp, dp;
};
Groups groups_of(int pp, int dp) {
  Config c;
  c.pipeline.stages = pp;
  c.parallel.data = dp;
  std::set<std::vector<int>> pp_groups, dp_groups;
  for (int r = 0; r < pp * dp; ++r) {
    const PipelineLayout l = PipelineLayout::make(c, r, pp * dp);
    const std::vector<int> pipeline = l.pipeline_world_ranks();
    const std::vector<int> replicas = l.replica_world_ranks();
    // A rank belongs to the groups it computes.
    CHECK(pipeline[l.pp_rank] == r);
    CHECK(replicas[l.dp_rank] == r);
    pp_groups.insert(pipeline);
    dp_groups.insert(replicas);
  }
  return {{pp_groups.begin(), pp_groups.end()}, {dp_groups.begin(), dp_groups.end()}};
}
using Table = std::vector<std::vector<int>>;
}  // namespace

TEST_CASE("Pipeline and data-parallel groups: which world ranks form each", "[comm]") {
  SECTION("pp 4 x dp 1: one pipeline, every rank its own dp group") {
    const Groups g = groups_of(4, 1);
    CHECK(g.pp == Table{{0, 1, 2, 3}});
    CHECK(g.dp == Table{{0}, {1}, {2}, {3}});
  }
  SECTION("pp 2 x dp 2: data-parallel peers are adjacent ranks") {
    const Groups g = groups_of(2, 2);
    CHECK(g.pp == Table{{0, 2}, {1, 3}});
    CHECK(g.dp == Table{{0, 1}, {2, 3}});
  }
  SECTION("pp 4 x dp 2") {
    const Groups g = groups_of(4, 2);
    CHECK(g.pp == Table{{0, 2, 4, 6}, {1, 3, 5, 7}});
    CHECK(g.dp == Table{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  }
  SECTION("pp 2 x dp 4: a stage's replicas fill half a node of 8") {
    const Groups g = groups_of(2, 4);
    CHECK(g.pp == Table{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
    CHECK(g.dp == Table{{0, 1, 2, 3}, {4, 5, 6, 7}});
  }
}

TEST_CASE("The transport factory on the CPU", "[comm]") {
  RuntimeConfig runtime;
  runtime.device = "cpu";
  std::string chosen;
  const auto single = make_transport(runtime, 1, {}, &chosen);
  CHECK(chosen == "single");
  REQUIRE(single != nullptr);
  CHECK(dynamic_cast<SingleProcessTransport*>(single.get()) != nullptr);
  CHECK(single->world_size() == 1);

  runtime.comm = "nccl";
  CHECK_THROWS_WITH(make_transport(runtime, 1, {}, &chosen), Catch::Contains("nccl needs runtime.device cuda"));
}

#if !PPTRAIN_WITH_CUDA
TEST_CASE("Asking a CPU-only build for a GPU transport says how to get one", "[comm]") {
  RuntimeConfig runtime;
  runtime.device = "cuda";
  CHECK_THROWS_WITH(make_transport(runtime, 1, {}, nullptr),
                    Catch::Contains("this build has no CUDA backend: rebuild with -DPPTRAIN_CUDA=ON"));
  CHECK_THROWS_WITH(place_on_gpu("auto", 2), Catch::Contains("this build has no CUDA backend"));
}
#endif
