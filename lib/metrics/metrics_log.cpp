#include "metrics/metrics_log.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "metrics/throughput.h"

namespace pptrain {

std::string format_step_line(const StepMetrics& m, int total_steps, double eta_s) {
  std::string line = fmt::format(
      "step {:>{}}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | {:.1f} ms",
      m.step, fmt::formatted_size("{}", total_steps), total_steps, m.loss, m.lr, m.grad_norm,
      m.tokens_per_s, m.step_ms);
  if (!m.bubble_pct.empty()) {
    double sum = 0.0;
    for (double b : m.bubble_pct) sum += b;
    line += fmt::format(" | bubble {:.1f}%", sum / m.bubble_pct.size());
  }
  if (m.val_loss) line += fmt::format(" | val {:.4f}", *m.val_loss);
  if (m.step < total_steps) line += fmt::format(" | eta {}", format_duration(eta_s));
  return line;
}

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(path, std::ios::trunc) {
  PPT_CHECK(out_.good(), "cannot write metrics file '{}'", path);
}

void MetricsLog::write(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},
                      {"loss", m.loss},
                      {"lr", m.lr},
                      {"grad_norm", m.grad_norm},
                      {"tokens_per_s", m.tokens_per_s},
                      {"step_ms", m.step_ms}};
  if (m.val_loss) j["val_loss"] = *m.val_loss;
  if (!m.bubble_pct.empty()) j["bubble_pct"] = m.bubble_pct;
  out_ << j.dump() << '\n';
  out_.flush();
  PPT_CHECK(out_.good(), "failed writing metrics file '{}'", path_);
}

}  // namespace pptrain
