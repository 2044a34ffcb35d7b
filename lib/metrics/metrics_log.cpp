#include "metrics/metrics_log.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "metrics/throughput.h"

namespace pptrain {

std::string format_step_line(const StepMetrics& m, int total_steps, double eta_s) {
  std::string line = fmt::format(
      "step {:>{}}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | {:.1f} ms",
      m.step, fmt::formatted_size("{}", total_steps), total_steps, m.loss, m.lr, m.grad_norm,
      m.tokens_per_s, m.step_ms);
  if (m.mfu_pct) line += fmt::format(" | MFU {:.1f}%", *m.mfu_pct);
  if (!m.bubble_pct.empty()) {
    double sum = 0.0;
    for (double b : m.bubble_pct) sum += b;
    line += fmt::format(" | bubble {:.1f}%", sum / m.bubble_pct.size());
  }
  if (m.val_loss) line += fmt::format(" | val {:.4f}", *m.val_loss);
  if (m.step < total_steps) line += fmt::format(" | eta {}", format_duration(eta_s));
  return line;
}

namespace {
std::string lines_through_step(const std::string& path, int last_step) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number() && j["step"].get<int>() <= last_step) {
      kept += line + "\n";
    }
  }
  return kept;
}
}  // namespace

MetricsLog::MetricsLog(const std::string& path, int resumed_after_step) : path_(path) {
  const std::string kept = resumed_after_step >= 0 ? lines_through_step(path, resumed_after_step) : "";
  out_.open(path, std::ios::trunc);
  out_ << kept;
  PPT_CHECK(out_.good(), "cannot write metrics file '{}'", path);
}

void MetricsLog::write(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},
                      {"loss", m.loss},
                      {"lr", m.lr},
                      {"grad_norm", m.grad_norm},
                      {"tokens_per_s", m.tokens_per_s},
                      {"step_ms", m.step_ms}};
  if (m.mfu_pct) j["mfu_pct"] = *m.mfu_pct;
  if (m.val_loss) j["val_loss"] = *m.val_loss;
  if (!m.bubble_pct.empty()) j["bubble_pct"] = m.bubble_pct;
  if (!m.peak_mib.empty()) j["peak_mib"] = m.peak_mib;
  out_ << j.dump() << '\n';
  out_.flush();
  PPT_CHECK(out_.good(), "failed writing metrics file '{}'", path_);
}

}  // namespace pptrain
