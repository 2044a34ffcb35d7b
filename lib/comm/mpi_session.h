// MPI bootstrap for one process of a job: started by mpirun/srun, or directly (a singleton
// of world size 1). Gives the rank, world size and node-local rank; ends the job on error.
#pragma once

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

  // In a job of several ranks, ends every rank with this exit code (MPI_Abort does not
  // return). With one rank it returns, and the caller returns the code from main.
  void abort_job_if_parallel(int exit_code);

 private:
  int rank_ = 0, world_size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace pptrain
