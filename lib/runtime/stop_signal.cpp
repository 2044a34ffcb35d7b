#include "runtime/stop_signal.h"

#include <csignal>

namespace pptrain {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void record_stop_signal(int signal) { g_stop_signal = signal; }
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // an interrupted read or sleep just carries on
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

std::vector<double> stop_signal_votes() {
  const int s = g_stop_signal;
  return {s == SIGTERM ? 1.0 : 0.0, s == SIGUSR1 ? 1.0 : 0.0};
}

int agreed_stop_signal(const std::vector<double>& summed_votes) {
  if (summed_votes.at(0) > 0.0) return SIGTERM;
  if (summed_votes.at(1) > 0.0) return SIGUSR1;
  return 0;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace pptrain
