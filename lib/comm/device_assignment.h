// Which GPU a rank drives and which transport carries its tensors (runtime.comm). The
// decisions are pure functions (choose_device, choose_comm), tested without MPI or a GPU;
// the thin collective part (local_ranks, every_rank_has_own_gpu, place_on_gpu) gathers
// their inputs over MPI and the CUDA runtime.
//
// Mapping: ranks on a node are numbered by MPI's shared-memory split (local rank 0..L-1).
// When every rank sees all G GPUs of its node, local rank r drives GPU r % G. When the
// launcher binds one GPU to each rank (srun --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per
// task), each rank sees one GPU, index 0. Either way, whether two ranks share a GPU is
// decided by comparing the PCI bus ids of the GPUs they chose, not by counting.
#pragma once

#include <string>

namespace pptrain {

// The GPU index (among the GPUs this rank sees) for local rank `local_rank` of `local_size`
// ranks on a node where it sees `gpus_on_node` GPUs: local_rank % gpus_on_node. With more
// ranks than GPUs it throws pptrain::Error ("node has 8 ranks but 4 GPUs: ...", with the
// fix) unless allow_sharing (runtime.comm mpi stages tensors through host memory, so ranks
// may share a GPU; NCCL cannot). No GPU at all always throws.
int choose_device(int local_rank, int local_size, int gpus_on_node, bool allow_sharing);

// The transport for runtime.comm `requested` (auto | nccl | mpi) on runtime.device `device`
// (cpu | cuda): "single" for a world of one rank, "mpi" on the CPU, and on GPUs "nccl" when
// every rank has its own GPU, else "mpi" (auto); nccl is refused on the CPU and when ranks
// share a GPU, naming the fix.
std::string choose_comm(const std::string& requested, const std::string& device, int world_size,
                        bool every_rank_has_own_gpu);

// ---- Collective part (MPI_COMM_WORLD must be initialized) ----

struct LocalRanks {
  int rank = 0;  // among the ranks of this node
  int size = 1;  // ranks on this node
};
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) over the world.
LocalRanks local_ranks();

// True on every rank when no two ranks of any node drive the same GPU. `gpu_bus_id` is the
// PCI bus id of the GPU this rank chose ("0000:17:00.0"); agreed over the world (MPI min).
bool every_rank_has_own_gpu(const std::string& gpu_bus_id);

struct GpuPlacement {
  int device = 0;           // CUDA device index among the GPUs this rank sees
  std::string bus_id;       // its PCI bus id
  LocalRanks local;
  int gpus_visible = 0;     // GPUs this rank sees (CUDA_VISIBLE_DEVICES applied)
  int gpus_on_node = 0;     // distinct GPUs the node's ranks drive
  bool own_gpu = true;      // every rank of the world has a GPU of its own
  std::string comm;         // choose_comm's answer: single | mpi | nccl
};

// Collective over the world, for runtime.device cuda: picks this rank's GPU, makes it the
// current device (cudaSetDevice), and decides the transport. Call it before creating any
// CUDA stream or buffer. Every rank throws the same way when runtime.comm nccl cannot be
// honoured. In a build without CUDA it throws "this build has no CUDA backend".
GpuPlacement place_on_gpu(const std::string& requested_comm, int world_size);

}  // namespace pptrain
