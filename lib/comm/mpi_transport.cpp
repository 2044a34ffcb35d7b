#include "comm/mpi_transport.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include <fmt/ranges.h>

#include "comm/mpi_check.h"
#include "comm/poll_until.h"

namespace pptrain {

namespace {
int to_int_count(std::size_t count) {
  PPT_CHECK(count <= static_cast<std::size_t>(INT_MAX), "message of {} values exceeds MPI's int count", count);
  return static_cast<int>(count);
}
}  // namespace

MpiTransport::MpiTransport(double timeout_s) : timeout_s_(timeout_s) {
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &p2p_));
}

MpiTransport::~MpiTransport() {
  // Leave communicators to MPI_Finalize: freeing them here could block on a dead peer.
}

Transport::Request MpiTransport::track(MPI_Request request, std::size_t bytes, int peer, int tag,
                                       bool is_send) {
  return pending_.add(Pending{request, bytes, peer, tag, is_send});
}

Transport::Request MpiTransport::isend(const float* data, std::size_t count, int peer, int tag) {
  MPI_Request r;
  MPI_CHECK(MPI_Isend(data, to_int_count(count), MPI_FLOAT, peer, tag, p2p_, &r));
  return track(r, count * sizeof(float), peer, tag, true);
}

Transport::Request MpiTransport::irecv(float* data, std::size_t count, int peer, int tag) {
  MPI_Request r;
  MPI_CHECK(MPI_Irecv(data, to_int_count(count), MPI_FLOAT, peer, tag, p2p_, &r));
  return track(r, count * sizeof(float), peer, tag, false);
}

void MpiTransport::wait_request(MPI_Request& request, const std::string& what) {
  poll_until(
      timeout_s_,
      [&] {
        int done = 0;
        MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        return done != 0;
      },
      [&](double waited) {
        PPT_THROW("waited {:.1f} s for {} (runtime.timeout_s = {}): the peer rank is lost or stuck",
                  waited, what, timeout_s_);
      });
}

void MpiTransport::wait(Request request, const std::string& what) {
  Pending& p = pending_.at(request);
  if (p.request != MPI_REQUEST_NULL) wait_request(p.request, what);
  pending_.take(request);
}

GroupId MpiTransport::split_group(int color, int key) {
  MPI_Comm comm;
  MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color < 0 ? MPI_UNDEFINED : color, key, &comm));
  if (comm == MPI_COMM_NULL) return kNoGroup;
  Group g;
  g.comm = comm;
  int size = 0;
  MPI_CHECK(MPI_Comm_size(comm, &size));
  MPI_CHECK(MPI_Comm_rank(comm, &g.my_index));
  MPI_Group group, world;
  MPI_CHECK(MPI_Comm_group(comm, &group));
  MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> local(size);
  for (int i = 0; i < size; ++i) local[i] = i;
  g.world_ranks.resize(size);
  MPI_CHECK(MPI_Group_translate_ranks(group, size, local.data(), world, g.world_ranks.data()));
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  groups_.push_back(std::move(g));
  return static_cast<GroupId>(groups_.size() - 1);
}

const MpiTransport::Group& MpiTransport::group_of(GroupId group, const std::string& what) const {
  PPT_CHECK(group >= 0 && static_cast<std::size_t>(group) < groups_.size(),
            "all-reduce '{}' on a group this rank is not in", what);
  return groups_[group];
}

void MpiTransport::allreduce(void* data, std::size_t count, MPI_Datatype type, GroupId group,
                             const std::string& what) {
  const int members = static_cast<int>(group_of(group, what).world_ranks.size());
  if (members == 1) return;
  // Few values, or two members: the exchange is as cheap as MPI's algorithms and names a
  // missing peer.
  constexpr std::size_t kExchangeMaxValues = 4096;
  if (members == 2 || count <= kExchangeMaxValues) {
    if (type == MPI_DOUBLE) {
      exchange_sum(static_cast<double*>(data), count, type, group, what);
    } else {
      exchange_sum(static_cast<float*>(data), count, type, group, what);
    }
    return;
  }
  check_arrival(group, what);
  MPI_Request r;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, to_int_count(count), type, MPI_SUM, groups_[group].comm, &r));
  wait_request(r, what);
}

void MpiTransport::wait_all_naming(std::vector<MPI_Request>& requests, const std::vector<int>& peers,
                                   const std::string& what) {
  std::vector<int> open;  // peers whose request is still open, as of the last poll
  poll_until(
      timeout_s_,
      [&] {
        open.clear();
        for (std::size_t i = 0; i < requests.size(); ++i) {
          int done = 0;
          MPI_CHECK(MPI_Test(&requests[i], &done, MPI_STATUS_IGNORE));
          if (!done) open.push_back(peers[i]);
        }
        return open.empty();
      },
      [&](double waited) {
        PPT_THROW("waited {:.1f} s for {} (runtime.timeout_s = {}): nothing came from rank {}, lost or stuck",
                  waited, what, timeout_s_, fmt::join(open, ", "));
      });
}

// A collective cannot say who is missing, so first every member sends one byte to every
// other: a timeout then names the ranks that never arrived. One round of tiny messages per
// large reduction is noise next to the reduction itself.
void MpiTransport::check_arrival(GroupId group, const std::string& what) {
  const Group& g = groups_[group];
  const int n = static_cast<int>(g.world_ranks.size());
  constexpr int kArrivalTag = 1;
  std::vector<char> out(n, 1), in(n, 0);
  std::vector<MPI_Request> sends, recvs;
  std::vector<int> peers;
  for (int i = 0; i < n; ++i) {
    if (i == g.my_index) continue;
    sends.emplace_back();
    MPI_CHECK(MPI_Isend(&out[i], 1, MPI_CHAR, i, kArrivalTag, g.comm, &sends.back()));
    recvs.emplace_back();
    MPI_CHECK(MPI_Irecv(&in[i], 1, MPI_CHAR, i, kArrivalTag, g.comm, &recvs.back()));
    peers.push_back(g.world_ranks[i]);
  }
  wait_all_naming(recvs, peers, what);
  wait_all_naming(sends, peers, what);
}

template <typename T>
void MpiTransport::exchange_sum(T* data, std::size_t count, MPI_Datatype type, GroupId group,
                                const std::string& what) {
  const Group& g = groups_[group];
  const int n = static_cast<int>(g.world_ranks.size());
  constexpr int kExchangeTag = 2;
  const std::vector<T> mine(data, data + count);  // the send buffer must outlive the sends
  std::vector<std::vector<T>> theirs(n);
  std::vector<MPI_Request> sends, recvs;
  std::vector<int> peers;
  for (int i = 0; i < n; ++i) {
    if (i == g.my_index) continue;
    theirs[i].resize(count);
    recvs.emplace_back();
    MPI_CHECK(MPI_Irecv(theirs[i].data(), to_int_count(count), type, i, kExchangeTag, g.comm, &recvs.back()));
    sends.emplace_back();
    MPI_CHECK(MPI_Isend(mine.data(), to_int_count(count), type, i, kExchangeTag, g.comm, &sends.back()));
    peers.push_back(g.world_ranks[i]);
  }
  wait_all_naming(recvs, peers, what);
  for (std::size_t k = 0; k < count; ++k) {
    T sum = 0;
    for (int i = 0; i < n; ++i) sum += i == g.my_index ? mine[k] : theirs[i][k];
    data[k] = sum;
  }
  wait_all_naming(sends, peers, what);
}

void MpiTransport::allreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) {
  allreduce(data, count, MPI_FLOAT, group, what);
}

Transport::Request MpiTransport::iallreduce_sum(float* data, std::size_t count, GroupId group,
                                               const std::string& what) {
  const Group& g = group_of(group, what);
  MPI_Request r = MPI_REQUEST_NULL;
  if (g.world_ranks.size() > 1 && count > 0) {
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, to_int_count(count), MPI_FLOAT, MPI_SUM, g.comm, &r));
  }
  return track(r, count * sizeof(float), -1, -1, false);
}

void MpiTransport::allreduce_sum(double* data, std::size_t count, GroupId group, const std::string& what) {
  allreduce(data, count, MPI_DOUBLE, group, what);
}

}  // namespace pptrain
