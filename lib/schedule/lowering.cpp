#include "schedule/lowering.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "core/error.h"

namespace pptrain::schedule {

Schedule lower(const Schedule& compute_only) {
  const Schedule& in = compute_only;
  check_shape(in.ranks, in.virtual_stages, in.micro_batches, in.placement);
  PPT_CHECK(static_cast<int>(in.actions.size()) == in.ranks,
            "{}: has action lists for {} ranks, expected {}", describe(in), in.actions.size(),
            in.ranks);
  const int S = in.stages();
  Schedule out = in;
  for (int r = 0; r < in.ranks; ++r) {
    std::vector<Action>& list = out.actions[r];
    list.clear();
    list.reserve(2 * in.actions[r].size());
    for (const Action& a : in.actions[r]) {
      PPT_CHECK(is_compute(a.kind), "{}: cannot lower rank {}'s list: it already holds {}",
                describe(in), r, to_string(a));
      const std::string misfit = action_misfit(in, r, a);
      PPT_CHECK(misfit.empty(), "{}: rank {}: {}: {}", describe(in), r, to_string(a), misfit);
      const int s = a.stage, mb = a.micro_batch;
      const bool prev_remote = s > 0 && in.rank_of_stage(s - 1) != r;
      const bool next_remote = s < S - 1 && in.rank_of_stage(s + 1) != r;
      if (a.kind == ActionKind::Forward) {
        if (prev_remote) list.push_back({s, ActionKind::RecvF, mb});
        list.push_back(a);
        if (next_remote) list.push_back({s, ActionKind::SendF, mb});
      } else if (makes_input_grad(a.kind)) {
        if (next_remote) list.push_back({s, ActionKind::RecvB, mb});
        list.push_back(a);
        if (prev_remote) list.push_back({s, ActionKind::SendB, mb});
      } else {
        list.push_back(a);  // W: local only
      }
    }
  }
  return out;
}

std::vector<CommGroup> comm_groups(const std::vector<Action>& rank_actions) {
  std::vector<CommGroup> groups;
  const int n = static_cast<int>(rank_actions.size());
  for (int i = 0; i < n;) {
    if (!is_comm(rank_actions[i].kind)) {
      ++i;
      continue;
    }
    CommGroup g{i, i};
    while (g.end < n && is_comm(rank_actions[g.end].kind)) ++g.end;
    groups.push_back(g);
    i = g.end;
  }
  return groups;
}

int peer_rank(const Schedule& schedule, const Action& comm) {
  PPT_CHECK(is_comm(comm.kind), "peer_rank: {} is not a communication action", to_string(comm));
  const int peer = matching_comm(comm).stage;
  PPT_CHECK(peer >= 0 && peer < schedule.stages(), "{}: {} has no peer stage {}",
            describe(schedule), to_string(comm), peer);
  return schedule.rank_of_stage(peer);
}

int comm_tag(const Schedule& schedule, const Action& comm) {
  PPT_CHECK(is_comm(comm.kind), "comm_tag: {} is not a communication action", to_string(comm));
  const int boundary = std::min(comm.stage, matching_comm(comm).stage);
  const int direction = (comm.kind == ActionKind::SendF || comm.kind == ActionKind::RecvF) ? 0 : 1;
  return 2 * (boundary * schedule.micro_batches + comm.micro_batch) + direction;
}

std::string channel_order_mismatch(const Schedule& lowered) {
  using Channel = std::tuple<int, int, int>;  // (sender rank, receiver rank, direction)
  std::map<Channel, std::vector<int>> sent, received;
  for (int rank = 0; rank < static_cast<int>(lowered.actions.size()); ++rank) {
    for (const Action& a : lowered.actions[rank]) {
      if (!is_comm(a.kind)) continue;
      const int tag = comm_tag(lowered, a), peer = peer_rank(lowered, a);
      if (is_send(a.kind)) {
        sent[{rank, peer, tag & 1}].push_back(tag);
      } else {
        received[{peer, rank, tag & 1}].push_back(tag);
      }
    }
  }
  for (const auto& [channel, tags] : sent) {
    const auto& [from, to, direction] = channel;
    if (received[channel] != tags) {
      return fmt::format("rank {} sends its {} to rank {} in an order rank {} does not receive them in",
                         from, direction == 0 ? "activations" : "gradients", to, to);
    }
  }
  return "";
}

}  // namespace pptrain::schedule
