// Transport over MPI for CPU tensors. Every point-to-point message is a non-blocking
// MPI_Isend/MPI_Irecv on a private duplicate of MPI_COMM_WORLD; waits poll MPI_Test with a
// growing sleep (50 us to 2 ms), so a waiting rank leaves its core to the ranks that compute,
// and give up after timeout_s, naming what they waited for and, where it can be known, the
// rank that never came. Reductions among two ranks or of a few values are exchanged point
// to point and summed in rank order (bitwise the same on every member, and a missing member
// is named); large ones go through MPI_Iallreduce after an arrival check. A reduction left
// running (iallreduce_sum) is an MPI_Iallreduce whatever its size: two members get the same
// sums as the exchange (a + b == b + a), and a timeout names the group's ranks.
#pragma once

#include <mpi.h>

#include <vector>

#include "comm/request_table.h"
#include "comm/transport.h"

namespace pptrain {

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(double timeout_s);
  ~MpiTransport() override;

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
  Request track(MPI_Request request, std::size_t bytes, int peer, int tag, bool is_send);
  void wait_request(MPI_Request& request, const std::string& what);
  void allreduce(void* data, std::size_t count, MPI_Datatype type, GroupId group, const std::string& what);
  void check_arrival(GroupId group, const std::string& what);
  template <typename T>
  void exchange_sum(T* data, std::size_t count, MPI_Datatype type, GroupId group, const std::string& what);
  // Waits for all requests, sleeping between polls; on timeout names the world ranks
  // (peers[i] for requests[i]) whose requests are still open.
  void wait_all_naming(std::vector<MPI_Request>& requests, const std::vector<int>& peers,
                       const std::string& what);

  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    std::size_t bytes = 0;
    int peer = -1, tag = -1;
    bool is_send = false;
  };
  double timeout_s_;
  int rank_ = 0, world_size_ = 1;
  MPI_Comm p2p_ = MPI_COMM_NULL;
  struct Group {
    MPI_Comm comm = MPI_COMM_NULL;
    std::vector<int> world_ranks;  // by rank within the group
    int my_index = 0;
  };
  // The group's members; throws naming `what` when this rank is not one of them.
  const Group& group_of(GroupId group, const std::string& what) const;
  std::vector<Group> groups_;
  RequestTable<Pending> pending_;
};

}  // namespace pptrain
