#include "comm/device_assignment.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "comm/mpi_check.h"
#include "core/error.h"

#if PPTRAIN_WITH_CUDA
#include "kernels/cuda_device.h"
#endif

namespace pptrain {

int choose_device(int local_rank, int local_size, int gpus_on_node, bool allow_sharing) {
  PPT_CHECK(0 <= local_rank && local_rank < local_size, "local rank {} outside a node of {} ranks",
            local_rank, local_size);
  PPT_CHECK(gpus_on_node > 0,
            "runtime.device is cuda but local rank {} sees no GPU: check CUDA_VISIBLE_DEVICES and "
            "that the job asked for GPUs (srun --gpus-per-task=1 or --gres=gpu:N)",
            local_rank);
  PPT_CHECK(local_size <= gpus_on_node || allow_sharing,
            "node has {} ranks but {} GPUs: runtime.comm nccl needs one GPU per rank; set "
            "runtime.comm: mpi (or auto) to let ranks share GPUs through pinned host memory, or "
            "launch at most {} ranks per node",
            local_size, gpus_on_node, gpus_on_node);
  return local_rank % gpus_on_node;
}

std::string choose_comm(const std::string& requested, const std::string& device, int world_size,
                        bool every_rank_has_own_gpu) {
  PPT_CHECK(requested == "auto" || requested == "nccl" || requested == "mpi",
            "runtime.comm '{}' is not one of auto, nccl, mpi", requested);
  PPT_CHECK(device == "cpu" || device == "cuda", "runtime.device '{}' is not one of cpu, cuda", device);
  PPT_CHECK(world_size >= 1, "a world of {} ranks", world_size);
  PPT_CHECK(!(requested == "nccl" && device == "cpu"),
            "runtime.comm nccl needs runtime.device cuda; use mpi or auto on the CPU");
  if (world_size == 1) return "single";
  if (device == "cpu" || requested == "mpi") return "mpi";
  if (every_rank_has_own_gpu) return "nccl";
  PPT_CHECK(requested == "auto",
            "runtime.comm is nccl but some ranks share a GPU (a node runs more ranks than it has "
            "GPUs): NCCL needs one GPU per rank; set runtime.comm: mpi (or auto) to stage tensors "
            "through pinned host memory, or launch one rank per GPU");
  return "mpi";
}

LocalRanks local_ranks() {
  int world_rank = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node));
  LocalRanks local;
  MPI_CHECK(MPI_Comm_rank(node, &local.rank));
  MPI_CHECK(MPI_Comm_size(node, &local.size));
  MPI_Comm_free(&node);
  return local;
}

namespace {
constexpr int kBusIdChars = 32;  // "0000:17:00.0" and room to spare
using BusId = std::array<char, kBusIdChars>;

// The bus ids chosen by every rank of this node, in local-rank order.
std::vector<BusId> node_bus_ids(const std::string& mine) {
  int world_rank = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node));
  int size = 0;
  MPI_CHECK(MPI_Comm_size(node, &size));
  BusId id{};
  std::strncpy(id.data(), mine.c_str(), kBusIdChars - 1);
  std::vector<BusId> all(size);
  MPI_CHECK(MPI_Allgather(id.data(), kBusIdChars, MPI_CHAR, all.data(), kBusIdChars, MPI_CHAR, node));
  MPI_Comm_free(&node);
  return all;
}

int distinct(std::vector<BusId> ids) {
  std::sort(ids.begin(), ids.end());
  return static_cast<int>(std::unique(ids.begin(), ids.end()) - ids.begin());
}
}  // namespace

bool every_rank_has_own_gpu(const std::string& gpu_bus_id) {
  const std::vector<BusId> ids = node_bus_ids(gpu_bus_id);
  const int mine = distinct(ids) == static_cast<int>(ids.size()) ? 1 : 0;
  int all = 0;
  MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  return all == 1;
}

#if PPTRAIN_WITH_CUDA
GpuPlacement place_on_gpu(const std::string& requested_comm, int world_size) {
  GpuPlacement p;
  p.local = local_ranks();
  p.gpus_visible = kernels::cuda::device_count();
  // A rank that sees no GPU must still take part in the collectives below, or the others
  // would wait for it; it reports after them.
  std::string bus_id = "none";
  if (p.gpus_visible > 0) {
    p.device = choose_device(p.local.rank, p.local.size, p.gpus_visible, /*allow_sharing=*/true);
    bus_id = kernels::cuda::device_bus_id(p.device);
  }
  p.bus_id = bus_id;
  const std::vector<BusId> ids = node_bus_ids(bus_id);
  p.gpus_on_node = distinct(ids);
  p.own_gpu = every_rank_has_own_gpu(bus_id);
  // Every rank has taken part in every collective: now each may throw on its own.
  choose_device(p.local.rank, p.local.size, p.gpus_visible, /*allow_sharing=*/true);  // no GPU
  if (requested_comm == "nccl" && world_size > 1) {
    // On the node that shares a GPU, name its counts; the other nodes' ranks get
    // choose_comm's message.
    choose_device(p.local.rank, p.local.size, p.gpus_on_node, /*allow_sharing=*/false);
  }
  p.comm = choose_comm(requested_comm, "cuda", world_size, p.own_gpu);
  kernels::cuda::use_device(p.device);
  return p;
}
#else
GpuPlacement place_on_gpu(const std::string&, int) {
  PPT_THROW("runtime.device is cuda but this build has no CUDA backend: rebuild with -DPPTRAIN_CUDA=ON");
}
#endif

}  // namespace pptrain
