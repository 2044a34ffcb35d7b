// The only way tensors cross ranks (DESIGN.md section 5): non-blocking point-to-point
// send/recv with tags, waits that never spin a core and give up after the configured
// timeout naming what they waited for, and sum all-reduce within a group of ranks.
// MpiTransport implements it for CPU tensors; SingleProcessTransport for a world of one.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace pptrain {

// A set of world ranks that reduce together (a pipeline's ranks, a stage's data-parallel
// replicas, the two holders of the tied embedding). Made collectively by split_group.
using GroupId = int;
inline constexpr GroupId kNoGroup = -1;

class Transport {
 public:
  using Request = int;
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // True when a receive takes the message with its tag (MPI). False when it takes the next
  // message on its channel, whatever the tag (NCCL: one channel per sender, receiver and
  // tag parity); the schedule must then keep each channel in order
  // (schedule::channel_order_mismatch).
  virtual bool matches_by_tag() const { return true; }

  // Data must stay untouched until the request is waited for.
  virtual Request isend(const float* data, std::size_t count, int peer, int tag) = 0;
  virtual Request irecv(float* data, std::size_t count, int peer, int tag) = 0;
  // Blocks (sleeping between polls) until the request completes. After the timeout it
  // throws pptrain::Error: "waited 5.0 s for <what> ...". `what` names the action and peer.
  virtual void wait(Request request, const std::string& what) = 0;

  // Collective over all world ranks: ranks passing the same color form one group, ordered
  // by key; a rank passing color < 0 joins none and gets kNoGroup.
  virtual GroupId split_group(int color, int key) = 0;
  // In-place sum over the group's members; `what` names the reduction in a timeout error.
  virtual void allreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) = 0;
  // The same sum, started and left running: data (backend memory) stays untouched until
  // wait(request, what) returns, and holds the sum from then on (on a GPU: for work queued
  // after wait). Every member must start the same reductions on the group in the same order;
  // they may overlap point-to-point traffic and computation (runtime/grad_reduction.h).
  virtual Request iallreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) = 0;
  virtual void allreduce_sum(double* data, std::size_t count, GroupId group, const std::string& what) = 0;
};

// World of one rank: there is no peer to talk to and every group is this rank alone.
class SingleProcessTransport final : public Transport {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  Request isend(const float*, std::size_t, int peer, int tag) override;
  Request irecv(float*, std::size_t, int peer, int tag) override;
  void wait(Request, const std::string&) override {}
  GroupId split_group(int color, int) override { return color < 0 ? kNoGroup : 0; }
  void allreduce_sum(float*, std::size_t, GroupId, const std::string&) override {}
  void allreduce_sum(double*, std::size_t, GroupId, const std::string&) override {}
  Request iallreduce_sum(float*, std::size_t, GroupId, const std::string&) override { return 0; }
};

}  // namespace pptrain
