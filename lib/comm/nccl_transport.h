// Transport for GPU tensors over NCCL (runtime.comm nccl; DESIGN.md section 5). Every rank
// drives a GPU of its own (place_on_gpu checks it). Pointers given to isend/irecv and
// allreduce_sum(float*) are DEVICE pointers; allreduce_sum(double*) takes host memory and
// runs over MPI.
//
// Communicators, all non-blocking (ncclConfig_t::blocking = 0) so that no NCCL call can
// hang the host: every wait polls, sleeping, under runtime.timeout_s, and on a timeout
// aborts the communicators involved (ncclCommAbort) and throws pptrain::Error naming what
// it waited for and the peer world rank.
//   world:    rank 0 makes the ncclUniqueId and broadcasts it over MPI_COMM_WORLD;
//   groups:   split_group = ncclCommSplit of the world communicator (for the GPU
//             all-reduce) and, in step, an MPI group in an inner MpiTransport (for the host
//             all-reduce of a few scalars, and an arrival check that names a missing member
//             before the NCCL all-reduce, which cannot);
//   channels: one 2-rank communicator per ordered (sender, receiver) pair and direction
//             (the tag's low bit: 0 activations, 1 gradients), made by connect(), each with
//             its own stream. NCCL has no tags: a receive gets the next message sent on its
//             channel, so a channel must be received in the order it is sent. The lowered
//             schedule guarantees that per direction, not per pair (interleaved schedules on
//             2 ranks send activations and gradients over one pair in an order the peer
//             receives them in differently); the executor checks it at start-up
//             (schedule::channel_order_mismatch), since matches_by_tag() is false here.
//
// Why a communicator per channel and not "one NCCL group per step's sends and receives".
// The executor issues its sends and receives one at a time, as the lowered schedule lists
// them, and promises only FIFO order per (sender, receiver) pair. On a single communicator,
// NCCL matches point-to-point operations by the order they are issued on each rank and runs
// them on one stream; two ranks that each issue a send to the other before the matching
// receive (a stage boundary in 1F1B steady state does exactly that) can each block their
// stream on a send the other has not posted the receive for, once a message exceeds
// NCCL's internal buffer: a deadlock. A grouped step (ncclGroupStart,
// all of a step's sends and receives, ncclGroupEnd) avoids it, but needs the executor to
// hand over a whole step at once, and serializes a step's transfers behind the step's
// slowest one. With one communicator and one stream per ordered pair, each channel is its
// own FIFO, as the executor assumes: a send from A to B never waits behind a send from B to
// A, and the send of micro-batch k runs on its channel's stream while the compute stream
// runs k+1. The cost: 2 communicators per neighbouring pair (each holds NCCL buffers, a few
// MiB with the default NCCL_BUFFSIZE and channel count), their creation at start-up, and
// one stream per channel. If the executor later hands over whole steps, a batched
// isend/irecv group on the world communicator would be the cheaper design.
//
// Ordering against the compute stream (`compute`): an operation waits on an event recorded
// on the compute stream when it is issued (so a send reads what earlier kernels wrote, and
// a receive does not overwrite a buffer they still read); its own done event is recorded on
// the channel stream. wait() polls that event; for a receive it then makes the compute
// stream wait on it, so kernels queued after wait() see the data. The float all-reduce runs
// on its group's stream the same way and returns once it is done; iallreduce_sum returns at
// once, and its wait() makes the compute stream wait for the sum. Only the blocking one
// first checks, over MPI, that every member arrived (so a timeout names the missing one): a
// reduction left running must not stop the host, so its timeout names the whole group.
// Started during a backward (runtime/grad_reduction.h), such sums run on the group's stream
// while the pipeline channels' transfers run on theirs: NCCL's guide warns that operations
// of different communicators running at once can deadlock (each NCCL kernel waits on its
// peers while it occupies the GPU). Every member starts the same sums in the same order,
// as Megatron-LM's overlapped data-parallel sums do beside its pipeline transfers; if a job
// still hangs there, the timeout names the group and parallel.overlap_grad_reduce: false
// runs every sum after the step, when no transfer is in flight.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_transport.h"
#include "comm/request_table.h"
#include "comm/transport.h"
#include "kernels/cuda/cuda_types.h"

struct ncclComm;    // ncclComm_t
struct CUstream_st;  // cudaStream_t
struct CUevent_st;   // cudaEvent_t

namespace pptrain {

class NcclTransport final : public Transport {
 public:
  // Collective over MPI_COMM_WORLD (MPI initialized, this rank's GPU current: see
  // place_on_gpu). Makes the world communicator; no channels yet.
  NcclTransport(double timeout_s, kernels::cuda::Stream compute);
  ~NcclTransport() override;  // destroys every communicator; never throws
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  // Collective over the world: makes the channels to and from every rank in `peers` (the
  // world ranks this rank sends to or receives from; a pair is connected when either side
  // names the other). Call it once the schedule is known and before the first isend/irecv;
  // calling it again adds channels. Channels are made in one order on every rank (ordered
  // pairs (a, b) by a, then b), each by a rendezvous of its two ranks only, so creation
  // cannot deadlock; each is warmed up with a one-value transfer, so that NCCL's lazy
  // connection set-up never runs inside isend.
  void connect(const std::vector<int>& peers);

  bool matches_by_tag() const override { return false; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  Request isend(const float* data, std::size_t count, int peer, int tag) override;
  Request irecv(float* data, std::size_t count, int peer, int tag) override;
  void wait(Request request, const std::string& what) override;
  GroupId split_group(int color, int key) override;
  void allreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) override;
  void allreduce_sum(double* data, std::size_t count, GroupId group, const std::string& what) override;
  Request iallreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) override;

 private:
  struct Channel {
    int from = -1, to = -1;  // world ranks
    int direction = 0;       // tag & 1
    ncclComm* comm = nullptr;  // 2 ranks: the sender is rank 0
    CUstream_st* stream = nullptr;
    bool aborted = false;
  };
  struct Group {
    ncclComm* comm = nullptr;
    CUstream_st* stream = nullptr;
    GroupId mpi_group = kNoGroup;  // the same members in mpi_
    std::vector<int> world_ranks;  // by rank within the group
    bool aborted = false;
  };
  struct Pending {
    CUevent_st* done = nullptr;  // nullptr: nothing was issued (a group of one)
    int channel = -1;
    GroupId group = kNoGroup;    // an all-reduce's group (then channel is -1)
    int peer = -1, tag = -1;
    bool is_recv = false;
  };
  int channel_index(int from, int to, int direction) const;  // -1 when not connected
  Request issue(void* data, std::size_t count, int peer, int tag, bool is_recv);
  // Queues the all-reduce on its group's stream after the compute stream's work so far;
  // returns the event recorded after it.
  CUevent_st* issue_allreduce(float* data, std::size_t count, Group& g, const std::string& what);
  void make_channel(int from, int to, int direction);
  // Polls comm's state until no operation is being enqueued; aborts and throws naming
  // `what` on timeout or an asynchronous NCCL error.
  void settle(ncclComm* comm, bool* aborted, const std::string& what);
  // Polls `done` (recorded after an operation on comm) until it has passed; on an NCCL error
  // or the timeout, aborts comm and throws naming `what` and `peers` ("rank 3").
  void wait_done(CUevent_st* done, ncclComm* comm, bool* aborted, const std::string& what,
                 const std::string& peers);
  CUevent_st* take_event();
  void abort(ncclComm* comm, bool* aborted) noexcept;
  void release(ncclComm*& comm, bool aborted) noexcept;

  double timeout_s_;
  CUstream_st* compute_;
  int rank_ = 0, world_size_ = 1;
  std::unique_ptr<MpiTransport> mpi_;  // host all-reduces and their groups
  ncclComm* world_ = nullptr;
  bool world_aborted_ = false;
  CUevent_st* compute_ready_ = nullptr;  // recorded on compute before each operation
  float* warmup_ = nullptr;              // one device float for channel warm-up
  std::vector<Channel> channels_;
  std::vector<Group> groups_;
  RequestTable<Pending> pending_;
  std::vector<CUevent_st*> free_events_;
};

}  // namespace pptrain
