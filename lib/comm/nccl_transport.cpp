// Compiled in every build; the body needs NCCL (the factory refuses runtime.comm nccl without).
#if PPTRAIN_WITH_NCCL

#include "comm/nccl_transport.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>

#include <fmt/ranges.h>

#include "comm/cuda_host_check.h"
#include "comm/poll_until.h"
#include "comm/mpi_check.h"

namespace pptrain {

namespace {
// The channel unique id travels over the inner MpiTransport as floats (it is 128 opaque
// bytes), so its wait has the run's timeout. A tag far above the executor's.
constexpr int kChannelIdTag = 30000;
constexpr std::size_t kIdFloats = (sizeof(ncclUniqueId) + sizeof(float) - 1) / sizeof(float);

ncclConfig_t nonblocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

cudaStream_t stream_of(kernels::cuda::Stream s) { return static_cast<cudaStream_t>(s.handle); }

std::string last_error(ncclComm_t comm) {
  const char* text = ncclGetLastError(comm);
  return text != nullptr ? text : "";
}
}  // namespace

NcclTransport::NcclTransport(double timeout_s, kernels::cuda::Stream compute)
    : timeout_s_(timeout_s), compute_(stream_of(compute)), mpi_(std::make_unique<MpiTransport>(timeout_s)) {
  rank_ = mpi_->rank();
  world_size_ = mpi_->world_size();
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
  ncclConfig_t config = nonblocking_config();
  NCCL_CHECK(ncclCommInitRankConfig(&world_, world_size_, id, rank_, &config));
  settle(world_, &world_aborted_, fmt::format("the NCCL world communicator ({} ranks)", world_size_));
  CUDA_CHECK(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming));
  CUDA_CHECK(cudaMalloc(&warmup_, sizeof(float)));
  CUDA_CHECK(cudaMemset(warmup_, 0, sizeof(float)));
}

NcclTransport::~NcclTransport() {
  // Never throws. Unwinding from an error, peers may never reach their own destructor:
  // abort at once. Otherwise finalize every communicator together (finalizing waits for
  // the peers to finalize too), give them runtime.timeout_s, then destroy what finished
  // and abort the rest.
  std::vector<std::pair<ncclComm**, bool*>> comms;
  for (auto it = channels_.rbegin(); it != channels_.rend(); ++it) comms.emplace_back(&it->comm, &it->aborted);
  for (auto it = groups_.rbegin(); it != groups_.rend(); ++it) comms.emplace_back(&it->comm, &it->aborted);
  comms.emplace_back(&world_, &world_aborted_);
  const bool unwinding = std::uncaught_exceptions() > 0;
  for (auto& [comm, aborted] : comms) {
    if (*comm == nullptr || *aborted) continue;
    const ncclResult_t rc = unwinding ? ncclInternalError : ncclCommFinalize(*comm);
    if (rc != ncclSuccess && rc != ncclInProgress) abort(*comm, aborted);
  }
  if (!unwinding) {
    try {
      poll_until(
          timeout_s_,
          [&] {
            for (auto& [comm, aborted] : comms) {
              ncclResult_t state = ncclSuccess;
              if (*comm != nullptr && !*aborted && ncclCommGetAsyncError(*comm, &state) == ncclSuccess &&
                  state == ncclInProgress) {
                return false;
              }
            }
            return true;
          },
          [](double) { throw std::runtime_error("finalize timed out"); });
    } catch (...) {
    }
  }
  for (auto& [comm, aborted] : comms) release(*comm, *aborted);
  for (Channel& c : channels_) {
    if (c.stream != nullptr) cudaStreamDestroy(c.stream);
  }
  for (Group& g : groups_) {
    if (g.stream != nullptr) cudaStreamDestroy(g.stream);
  }
  pending_.for_each_live([](Pending& p) {
    if (p.done != nullptr) cudaEventDestroy(p.done);
  });
  for (CUevent_st* e : free_events_) cudaEventDestroy(e);
  if (compute_ready_ != nullptr) cudaEventDestroy(compute_ready_);
  if (warmup_ != nullptr) cudaFree(warmup_);
}

void NcclTransport::abort(ncclComm* comm, bool* aborted) noexcept {
  if (comm != nullptr && !*aborted) ncclCommAbort(comm);
  *aborted = true;
}

void NcclTransport::release(ncclComm*& comm, bool aborted) noexcept {
  if (comm == nullptr || aborted) return;
  ncclResult_t state = ncclInternalError;
  if (ncclCommGetAsyncError(comm, &state) == ncclSuccess && state == ncclSuccess) {
    ncclCommDestroy(comm);
  } else {
    ncclCommAbort(comm);
  }
  comm = nullptr;
}

void NcclTransport::settle(ncclComm* comm, bool* aborted, const std::string& what) {
  poll_until(
      timeout_s_,
      [&] {
        ncclResult_t state = ncclSuccess;
        NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
        if (state == ncclInProgress) return false;
        if (state != ncclSuccess) {
          const std::string detail = last_error(comm);
          abort(comm, aborted);
          PPT_THROW("NCCL failed on {}: {} ({})", what, ncclGetErrorString(state), detail);
        }
        return true;
      },
      [&](double waited) {
        abort(comm, aborted);
        PPT_THROW("waited {:.1f} s for {} (runtime.timeout_s = {}): NCCL did not finish; a peer rank is "
                  "lost or stuck (communicator aborted)",
                  waited, what, timeout_s_);
      });
}

void NcclTransport::wait_done(CUevent_st* done, ncclComm* comm, bool* aborted, const std::string& what,
                              const std::string& peers) {
  poll_until(
      timeout_s_,
      [&] {
        if (comm_detail::event_done(done)) return true;
        ncclResult_t state = ncclSuccess;
        NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
        if (state != ncclSuccess && state != ncclInProgress) {
          const std::string detail = last_error(comm);
          abort(comm, aborted);
          PPT_THROW("NCCL failed on {} with {}: {} ({})", what, peers, ncclGetErrorString(state), detail);
        }
        return false;
      },
      [&](double waited) {
        abort(comm, aborted);
        PPT_THROW("waited {:.1f} s for {} (runtime.timeout_s = {}): nothing from {}, lost or stuck "
                  "(NCCL communicator aborted)",
                  waited, what, timeout_s_, peers);
      });
}

CUevent_st* NcclTransport::take_event() {
  if (!free_events_.empty()) {
    CUevent_st* e = free_events_.back();
    free_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

int NcclTransport::channel_index(int from, int to, int direction) const {
  for (int i = 0; i < static_cast<int>(channels_.size()); ++i) {
    const Channel& c = channels_[i];
    if (c.from == from && c.to == to && c.direction == direction) return i;
  }
  return -1;
}

void NcclTransport::connect(const std::vector<int>& peers) {
  const int n = world_size_;
  std::vector<int> mine(n, 0);
  for (int p : peers) {
    PPT_CHECK(0 <= p && p < n && p != rank_, "NCCL channel to rank {} in a world of {} (this is rank {})",
              p, n, rank_);
    mine[p] = 1;
  }
  std::vector<int> all(static_cast<std::size_t>(n) * n);
  MPI_CHECK(MPI_Allgather(mine.data(), n, MPI_INT, all.data(), n, MPI_INT, MPI_COMM_WORLD));
  // Every rank walks the same ordered pairs in the same order and joins only its own: the
  // earliest pair not yet made always has both its ranks at it, so creation cannot deadlock.
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) {
      const bool wanted = a != b && (all[a * n + b] != 0 || all[b * n + a] != 0);
      if (!wanted || (a != rank_ && b != rank_)) continue;
      for (int direction = 0; direction < 2; ++direction) {
        if (channel_index(a, b, direction) < 0) make_channel(a, b, direction);
      }
    }
  }
}

void NcclTransport::make_channel(int from, int to, int direction) {
  const bool sender = rank_ == from;
  const int peer = sender ? to : from;
  const std::string what = fmt::format("the NCCL channel rank {} -> rank {} ({})", from, to,
                                       direction == 0 ? "activations" : "gradients");
  std::array<float, kIdFloats> id_words{};
  ncclUniqueId id;
  if (sender) {
    NCCL_CHECK(ncclGetUniqueId(&id));
    std::memcpy(id_words.data(), &id, sizeof id);
    mpi_->wait(mpi_->isend(id_words.data(), kIdFloats, peer, kChannelIdTag), what);
  } else {
    mpi_->wait(mpi_->irecv(id_words.data(), kIdFloats, peer, kChannelIdTag), what);
    std::memcpy(&id, id_words.data(), sizeof id);
  }
  channels_.emplace_back();
  Channel& c = channels_.back();
  c.from = from;
  c.to = to;
  c.direction = direction;
  CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
  ncclConfig_t config = nonblocking_config();
  NCCL_CHECK(ncclCommInitRankConfig(&c.comm, 2, id, sender ? 0 : 1, &config));
  settle(c.comm, &c.aborted, what);
  // NCCL connects point-to-point peers lazily, on their first transfer, and that needs both
  // ranks: do it here, where both are, rather than inside an isend.
  if (sender) {
    NCCL_CHECK(ncclSend(warmup_, 1, ncclFloat, 1, c.comm, c.stream));
  } else {
    NCCL_CHECK(ncclRecv(warmup_, 1, ncclFloat, 0, c.comm, c.stream));
  }
  settle(c.comm, &c.aborted, what);
  CUevent_st* done = take_event();
  CUDA_CHECK(cudaEventRecord(done, c.stream));
  wait_done(done, c.comm, &c.aborted, "the first transfer on " + what, fmt::format("rank {}", peer));
  free_events_.push_back(done);
}

Transport::Request NcclTransport::issue(void* data, std::size_t count, int peer, int tag, bool is_recv) {
  const int direction = tag & 1;
  const int ch = is_recv ? channel_index(peer, rank_, direction) : channel_index(rank_, peer, direction);
  PPT_CHECK(ch >= 0, "no NCCL channel {} rank {} (tag {}): name that rank in NcclTransport::connect",
            is_recv ? "from" : "to", peer, tag);
  Channel& c = channels_[ch];
  PPT_CHECK(!c.aborted, "the NCCL channel rank {} -> rank {} was aborted after an earlier failure", c.from,
            c.to);
  // The transfer starts after the compute stream's work so far: a send reads what it
  // wrote, a receive does not overwrite what it still reads.
  CUDA_CHECK(cudaEventRecord(compute_ready_, compute_));
  CUDA_CHECK(cudaStreamWaitEvent(c.stream, compute_ready_, 0));
  if (is_recv) {
    NCCL_CHECK(ncclRecv(data, count, ncclFloat, 0, c.comm, c.stream));
  } else {
    NCCL_CHECK(ncclSend(data, count, ncclFloat, 1, c.comm, c.stream));
  }
  settle(c.comm, &c.aborted,
         fmt::format("{} rank {} (tag {})", is_recv ? "a receive from" : "a send to", peer, tag));
  Pending p;
  p.done = take_event();
  CUDA_CHECK(cudaEventRecord(p.done, c.stream));
  p.channel = ch;
  p.peer = peer;
  p.tag = tag;
  p.is_recv = is_recv;
  return pending_.add(p);
}

Transport::Request NcclTransport::isend(const float* data, std::size_t count, int peer, int tag) {
  return issue(const_cast<float*>(data), count, peer, tag, /*is_recv=*/false);
}

Transport::Request NcclTransport::irecv(float* data, std::size_t count, int peer, int tag) {
  return issue(data, count, peer, tag, /*is_recv=*/true);
}

void NcclTransport::wait(Request request, const std::string& what) {
  const Pending p = pending_.take(request);
  if (p.done == nullptr) return;  // an all-reduce within a group of one
  // An all-reduce's result, like a receive's data, is for the kernels queued after wait().
  const bool compute_reads = p.is_recv || p.group != kNoGroup;
  try {
    if (p.group != kNoGroup) {
      Group& g = groups_[p.group];
      PPT_CHECK(!g.aborted, "{}: the NCCL group was aborted after an earlier failure", what);
      wait_done(p.done, g.comm, &g.aborted, what, fmt::format("ranks {}", fmt::join(g.world_ranks, ", ")));
    } else {
      Channel& c = channels_[p.channel];
      // An aborted communicator is freed: never poll it again.
      PPT_CHECK(!c.aborted, "{}: the NCCL channel with rank {} was aborted after an earlier failure", what, p.peer);
      wait_done(p.done, c.comm, &c.aborted, what, fmt::format("rank {}", p.peer));
    }
  } catch (...) {
    free_events_.push_back(p.done);
    throw;
  }
  if (compute_reads) CUDA_CHECK(cudaStreamWaitEvent(compute_, p.done, 0));
  free_events_.push_back(p.done);
}

GroupId NcclTransport::split_group(int color, int key) {
  const GroupId mpi_group = mpi_->split_group(color, key);
  // Members, as MPI_Comm_split and ncclCommSplit order them: by key, then world rank.
  const std::array<int, 2> mine{color, key};
  std::vector<int> all(2 * static_cast<std::size_t>(world_size_));
  MPI_CHECK(MPI_Allgather(mine.data(), 2, MPI_INT, all.data(), 2, MPI_INT, MPI_COMM_WORLD));
  ncclComm_t comm = nullptr;
  ncclConfig_t config = nonblocking_config();
  NCCL_CHECK(ncclCommSplit(world_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &comm, &config));
  const std::string what = fmt::format("the NCCL group of color {}", color);
  settle(world_, &world_aborted_, what);
  if (color < 0) return kNoGroup;
  Group g;
  g.comm = comm;
  settle(g.comm, &g.aborted, what);
  g.mpi_group = mpi_group;
  std::vector<std::array<int, 2>> members;  // (key, world rank)
  for (int r = 0; r < world_size_; ++r) {
    if (all[2 * r] == color) members.push_back({all[2 * r + 1], r});
  }
  std::sort(members.begin(), members.end());
  for (const auto& m : members) g.world_ranks.push_back(m[1]);
  CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  groups_.push_back(std::move(g));
  return static_cast<GroupId>(groups_.size() - 1);
}

CUevent_st* NcclTransport::issue_allreduce(float* data, std::size_t count, Group& g, const std::string& what) {
  PPT_CHECK(!g.aborted, "all-reduce '{}' on an NCCL group aborted after an earlier failure", what);
  CUDA_CHECK(cudaEventRecord(compute_ready_, compute_));
  CUDA_CHECK(cudaStreamWaitEvent(g.stream, compute_ready_, 0));
  NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, ncclSum, g.comm, g.stream));
  settle(g.comm, &g.aborted, what);
  CUevent_st* done = take_event();
  CUDA_CHECK(cudaEventRecord(done, g.stream));
  return done;
}

void NcclTransport::allreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) {
  PPT_CHECK(group >= 0 && static_cast<std::size_t>(group) < groups_.size(),
            "all-reduce '{}' on a group this rank is not in", what);
  Group& g = groups_[group];
  if (g.world_ranks.size() == 1 || count == 0) return;
  // NCCL cannot say which member is missing; a one-value MPI exchange first can, and names it.
  double arrived = 1.0;
  mpi_->allreduce_sum(&arrived, 1, g.mpi_group, what);
  Pending p;
  p.done = issue_allreduce(data, count, g, what);
  p.group = group;
  wait(pending_.add(p), what);
}

Transport::Request NcclTransport::iallreduce_sum(float* data, std::size_t count, GroupId group,
                                                 const std::string& what) {
  PPT_CHECK(group >= 0 && static_cast<std::size_t>(group) < groups_.size(),
            "all-reduce '{}' on a group this rank is not in", what);
  Group& g = groups_[group];
  Pending p;
  p.group = group;
  if (g.world_ranks.size() > 1 && count > 0) p.done = issue_allreduce(data, count, g, what);
  return pending_.add(p);
}

void NcclTransport::allreduce_sum(double* data, std::size_t count, GroupId group, const std::string& what) {
  PPT_CHECK(group >= 0 && static_cast<std::size_t>(group) < groups_.size(),
            "all-reduce '{}' on a group this rank is not in", what);
  mpi_->allreduce_sum(data, count, groups_[group].mpi_group, what);
}

}  // namespace pptrain

#endif  // PPTRAIN_WITH_NCCL
