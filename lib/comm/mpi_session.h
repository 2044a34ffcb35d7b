// MPI bootstrap for one process of a job: started by mpirun/srun, or directly (a singleton
// of world size 1). Gives the rank, world size and node-local rank; ends the job on error.
#pragma once

#include <optional>

#include "core/error.h"

namespace pptrain {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Runs a start-up step (config, data checks) on every rank and agrees on the outcome, so
  // that a bad input is reported once, by the lowest failing rank, and every rank exits
  // cleanly instead of some waiting forever for the others (raise_if_any_rank_failed).
  template <typename Step>
  void run_on_all_ranks(Step&& step) {
    std::optional<Error> error;
    try {
      step();
    } catch (const Error& e) {
      error = e;
    }
    raise_if_any_rank_failed(lowest_failing_rank(error.has_value()), rank_, error);
  }

  // In a job of several ranks, ends every rank with this exit code (MPI_Abort does not
  // return). With one rank it returns, and the caller returns the code from main.
  void abort_job_if_parallel(int exit_code);

 private:
  int lowest_failing_rank(bool failed);  // -1 when no rank failed; collective
  int rank_ = 0, world_size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace pptrain
