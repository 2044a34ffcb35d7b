// CPU ranks share the node's cores: each uses `requested` threads or, when requested is 0,
// the cores it is bound to if the launcher bound it (mpirun binds each of up to 2 ranks to
// one core), else the node's cores / its ranks on the node, at least 1. OpenMP loops and
// OpenBLAS (its OpenMP build) use the same count.
#pragma once

namespace pptrain {

int configure_cpu_threads(int requested, int local_ranks);
// Cores in this process's affinity mask.
int usable_cores();

}  // namespace pptrain
