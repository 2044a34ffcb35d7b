#include "schedule/schedule.h"

#include "core/error.h"

namespace pptrain::schedule {

int rank_of_stage(StagePlacement placement, int stage, int ranks) {
  if (placement == StagePlacement::Vee) return stage < ranks ? stage : 2 * ranks - 1 - stage;
  return stage % ranks;
}

StagePlacement placement_of_schedule(std::string_view name) {
  return name == "zbv" ? StagePlacement::Vee : StagePlacement::Loop;
}

std::string_view placement_name(StagePlacement placement) {
  return placement == StagePlacement::Vee ? "vee" : "loop";
}

void check_shape(int ranks, int virtual_stages, int micro_batches, StagePlacement placement) {
  PPT_CHECK(ranks >= 1, "a schedule needs at least 1 rank (pipeline stage), got {}", ranks);
  PPT_CHECK(virtual_stages >= 1, "a schedule needs at least 1 virtual stage per rank, got {}",
            virtual_stages);
  PPT_CHECK(micro_batches >= 1, "a schedule needs at least 1 micro-batch, got {}", micro_batches);
  // The validator and simulator index flat (stage, micro-batch) arrays with int.
  const long long cells = 1LL * ranks * virtual_stages * micro_batches;
  PPT_CHECK(cells <= (1LL << 24),
            "schedule too large: {} ranks x {} virtual stages x {} "
            "micro-batches = {} (stage, micro-batch) pairs",
            ranks, virtual_stages, micro_batches, cells);
  PPT_CHECK(placement != StagePlacement::Vee || virtual_stages == 2,
            "the V placement puts two stages on each rank, but virtual_stages is {}", virtual_stages);
}

std::string action_misfit(const Schedule& schedule, int rank, const Action& action) {
  const int S = schedule.stages();
  const int s = action.stage;
  if (s < 0 || s >= S) {
    return fmt::format("stage {} does not exist ({} ranks x {} virtual stages = stages 0..{})", s,
                       schedule.ranks, schedule.virtual_stages, S - 1);
  }
  if (action.micro_batch < 0 || action.micro_batch >= schedule.micro_batches) {
    return fmt::format("micro-batch {} does not exist (micro-batches 0..{})", action.micro_batch,
                       schedule.micro_batches - 1);
  }
  if (schedule.rank_of_stage(s) != rank) {
    return fmt::format("stage {} lives on rank {}, not on rank {} ({} placement{})", s,
                       schedule.rank_of_stage(s), rank, placement_name(schedule.placement),
                       schedule.placement == StagePlacement::Loop
                           ? fmt::format(": stage s is on rank s % {}", schedule.ranks)
                           : std::string());
  }
  if (is_comm(action.kind)) {
    const int peer = matching_comm(action).stage;
    if (peer < 0 || peer >= S) {
      return fmt::format("{} has no peer: stage {} does not exist", kind_code(action.kind), peer);
    }
    if (schedule.rank_of_stage(peer) == rank) {
      return fmt::format(
          "stages {} and {} are both on rank {}: their data is handed over "
          "locally, without {}",
          s, peer, rank, kind_code(action.kind));
    }
  }
  return {};
}

bool has_comm(const Schedule& schedule) {
  for (const auto& list : schedule.actions) {
    for (const Action& a : list) {
      if (is_comm(a.kind)) return true;
    }
  }
  return false;
}

std::string describe(const Schedule& schedule) {
  return fmt::format("{} (p={}, v={}, m={})", schedule.name.empty() ? "schedule" : schedule.name,
                     schedule.ranks, schedule.virtual_stages, schedule.micro_batches);
}

}  // namespace pptrain::schedule
