// A one-line progress bar with ETA, redrawn in place with '\r' on a terminal only; in a
// batch job's log (not a tty, or under mpirun/srun unless PPTRAIN_PROGRESS=1) it prints
// nothing and the per-step log lines carry the ETA.
#pragma once

namespace pptrain {

class ProgressLine {
 public:
  ProgressLine();
  void update(int done, int total, double eta_s);
  void clear();  // before printing a regular line

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace pptrain
