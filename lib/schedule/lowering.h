// Lowering: a compute-only schedule -> the lowered schedule the executor runs, with the
// SEND/RECV actions between stages on different ranks.
//
// Runtime semantics the executor provides and the validator and simulator assume:
//  - a SEND is non-blocking: it is posted when the rank reaches it and never waits for
//    the receiver;
//  - a RECV blocks until the matching SEND has been executed (posted) by the peer;
//  - the executor posts all actions of one *comm group* (a maximal run of consecutive comm
//    actions in a rank's list) together, then waits for the group's receives.
// Lowering puts each SEND right after the compute that makes the data and each RECV right
// before the compute that needs it, so a group is "sends of the last compute, receives of
// the next one" (Megatron's send_forward_recv_backward), and a rank only ever blocks on
// data its next compute needs: a valid compute order can never deadlock on communication.
#pragma once

#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace pptrain::schedule {

// For each rank, in order: RECV_F(s, mb) before F(s, mb) when stage s-1 is on another rank;
// RECV_B(s, mb) before B/I(s, mb) when stage s+1 is on another rank; SEND_F(s, mb) after
// F(s, mb) when s+1 is on another rank; SEND_B(s, mb) after B/I(s, mb) when s-1 is on
// another rank. W needs nothing from other ranks. Consecutive stages on the same rank (p = 1)
// hand data over locally, so nothing is inserted. Throws if the input already holds comm
// actions or an action that does not fit its rank (action_misfit).
Schedule lower(const Schedule& compute_only);

// The comm groups of one rank's lowered list: index ranges [begin, end) of the maximal runs
// of consecutive comm actions, in list order. The executor posts each group together.
struct CommGroup {
  int begin = 0;
  int end = 0;
};
std::vector<CommGroup> comm_groups(const std::vector<Action>& rank_actions);

// The rank on the other end of a comm action: SEND_F(s) -> rank of s+1, RECV_F(s) <- rank of
// s-1, SEND_B(s) -> rank of s-1, RECV_B(s) <- rank of s+1. Throws for a compute action.
int peer_rank(const Schedule& schedule, const Action& comm);

// A message tag shared by a SEND and its matching RECV and by nothing else in the schedule:
// 2 * (boundary * m + micro_batch) + direction, in [0, 2*S*m), where the boundary is the
// lower of the two stages and direction is 0 for activations and 1 for gradients.
int comm_tag(const Schedule& schedule, const Action& comm);

// Transports that match messages by their order on a channel instead of by tag (NCCL has no
// tags) need, on every (sender rank, receiver rank, direction) channel, the receiver's RECVs
// in the order of the sender's SENDs; the direction is the tag's low bit. "" when the lowered
// schedule has that, else which channel does not. Every generated schedule has it per
// direction; per rank pair alone it fails for interleaved schedules on 2 ranks, where
// activations and gradients share a pair.
std::string channel_order_mismatch(const Schedule& lowered);

}  // namespace pptrain::schedule
