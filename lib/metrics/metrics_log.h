// What a logged step reports, written once as a console line and once as a JSON line in
// <run dir>/metrics.jsonl.
#pragma once

#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace pptrain {

struct StepMetrics {
  int step = 0;            // 1-based: the number of optimizer steps done
  double loss = 0.0;       // mean over the global batch's tokens (nats)
  double lr = 0.0;
  double grad_norm = 0.0;  // global L2 norm before clipping
  double tokens_per_s = 0.0;
  double step_ms = 0.0;
  // On GPUs: model FLOPs utilisation per GPU in percent (throughput.h), else empty.
  std::optional<double> mfu_pct;
  std::optional<double> val_loss;
  // Measured idle share of each pipeline rank's schedule time in this step, in percent:
  // 100 * (1 - compute time / time from its first action to its last). Empty for one stage.
  std::vector<double> bubble_pct;
  // Each pipeline rank's peak memory so far, MiB: its backend's tracker (host memory on the
  // CPU, GPU memory on a GPU), all categories, the largest over its replicas. It stops
  // growing after the first steps, at the memory plan's figure (`pptrain plan`).
  std::vector<double> peak_mib;
};

std::string format_step_line(const StepMetrics& m, int total_steps, double eta_s);

class MetricsLog {
 public:
  // A resumed run passes the step it resumes after: lines of later steps (logged before a
  // crash, and about to be redone) are dropped and new lines are appended. -1 starts afresh.
  explicit MetricsLog(const std::string& path, int resumed_after_step = -1);
  void write(const StepMetrics& m);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace pptrain
