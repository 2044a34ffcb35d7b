#include "runtime/cpu_threads.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <thread>

namespace pptrain {

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int configure_cpu_threads(int requested, int local_ranks) {
  int threads = requested;
  if (threads <= 0) {
    const int node_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int mine = usable_cores();
    // A launcher that bound this rank to a subset of the cores has already divided them;
    // otherwise the node's cores are shared out among its ranks.
    threads = mine < node_cores ? mine : std::max(1, node_cores / std::max(1, local_ranks));
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  return threads;
}

}  // namespace pptrain
