// CPU ranks share the node's cores: each uses `requested` threads, or cores / local ranks
// (at least 1) when requested is 0, for both OpenMP loops and OpenBLAS.
#pragma once

namespace pptrain {

int configure_cpu_threads(int requested, int local_ranks);

}  // namespace pptrain
