#include "metrics/progress_line.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "metrics/throughput.h"

namespace pptrain {

ProgressLine::ProgressLine() : enabled_(isatty(fileno(stdout)) != 0) {}

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
