// Graceful stop on SIGTERM and SIGUSR1, what Slurm sends before preemption or the time
// limit (and what mpirun forwards on SIGUSR1): the handler only records the signal; the
// trainer checks at the end of every step, all ranks agree, a checkpoint is written and the
// job exits 0 with a line saying how to resume.
#pragma once

#include <vector>

namespace pptrain {

void install_stop_signal_handlers();
const char* signal_name(int signal);

// The stop-signal agreement: each rank's votes {got SIGTERM, got SIGUSR1} are summed over
// all ranks, and every rank then stops for the same signal, whichever rank saw it first.
std::vector<double> stop_signal_votes();
int agreed_stop_signal(const std::vector<double>& summed_votes);  // 0: no stop

}  // namespace pptrain
