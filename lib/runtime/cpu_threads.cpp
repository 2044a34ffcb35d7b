#include "runtime/cpu_threads.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <thread>

namespace pptrain {

int configure_cpu_threads(int requested, int local_ranks) {
  int threads = requested;
  if (threads <= 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / std::max(1, local_ranks));
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  return threads;
}

}  // namespace pptrain
