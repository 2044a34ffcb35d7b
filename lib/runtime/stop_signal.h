// Graceful stop on SIGTERM and SIGUSR1, what Slurm sends before preemption or the time
// limit (and what mpirun forwards on SIGUSR1): the handler only records the signal; the
// trainer checks at the end of every step, all ranks agree, a checkpoint is written and the
// job exits 0 with a line saying how to resume.
#pragma once

namespace pptrain {

void install_stop_signal_handlers();
// 0 when no stop was requested, else the signal number.
int stop_signal_received();
const char* signal_name(int signal);

}  // namespace pptrain
