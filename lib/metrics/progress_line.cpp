#include "metrics/progress_line.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "metrics/throughput.h"

namespace pptrain {

namespace {
// mpirun hands its ranks a pseudo-terminal even when its own output goes to a batch log,
// so under a launcher the bar is drawn only on request (PPTRAIN_PROGRESS=1).
bool progress_wanted() {
  if (isatty(fileno(stdout)) == 0) return false;
  const char* forced = std::getenv("PPTRAIN_PROGRESS");
  if (forced != nullptr) return std::string(forced) == "1";
  return std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr && std::getenv("PMI_RANK") == nullptr &&
         std::getenv("SLURM_PROCID") == nullptr;
}
}  // namespace

ProgressLine::ProgressLine() : enabled_(progress_wanted()) {}

void ProgressLine::update(int done, int total, double eta_s) {
  if (!enabled_ || total <= 0) return;
  constexpr int kWidth = 30;
  const int filled = done * kWidth / total;
  const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  fmt::print(stdout, "\r[{}] {}/{} eta {}   ", bar, done, total, format_duration(eta_s));
  std::fflush(stdout);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!shown_) return;
  fmt::print(stdout, "\r{:60}\r", "");
  std::fflush(stdout);
  shown_ = false;
}

}  // namespace pptrain
