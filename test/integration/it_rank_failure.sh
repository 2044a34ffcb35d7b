# A lost rank ends the whole job with a non-zero exit, naming the rank, within the timeout:
#  1. kill -9 of rank 1 in the middle of a 4-rank run (mpirun sees the death and ends the job);
#  2. SIGSTOP of rank 2 (alive but stuck, the case no launcher notices): its neighbours'
#     waits time out after runtime.timeout_s and abort the job, naming rank 2;
#  3. the same for rank 1 of 2 replicas x 2 stages whose gradient sums run in buckets during
#     the last backward (runtime/grad_reduction.h): its replica's wait for a bucket, or for
#     another sum of the step, times out naming it or the group.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
timeout_s=3

# Starts a 4-rank run in the background; sets JOB_PID and waits until training has begun.
start_job() {  # start_job NAME [OVERRIDES...]
  local name="$1"; shift
  ( rc=0; "$MPIEXEC" -np 4 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=4 \
      --set model.n_layer=4 --set training.steps=100000 --set logging.every=1 "$@" \
      --set "logging.name=$name" --set "runtime.timeout_s=$timeout_s" \
      --set training.val_every=0 > "$WORK/$name.log" 2>&1 || rc=$?; echo "$rc" > "$WORK/$name.rc" ) &
  JOB_PID=$!
  for _ in $(seq 1 300); do
    [ -s "$WORK/runs/$name/metrics.jsonl" ] && return 0
    sleep 0.1
  done
  cat "$WORK/$name.log"; fail "$name: training did not start"
}

# PID of world rank $2 of the job whose run is named $1 (Open MPI puts the rank in the env).
rank_pid() {
  local pid
  for pid in $(pgrep -f "logging.name=$1"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$pid"; return 0
    fi
  done
  fail "no process for rank $2 of $1"
}

# Waits for the job to end; fails if it outlives the timeout plus a margin for start-up noise.
expect_job_ends() {
  local name="$1" start=$SECONDS
  while kill -0 "$JOB_PID" 2>/dev/null; do
    [ $((SECONDS - start)) -le $((timeout_s + 10)) ] || { pkill -9 -f "logging.name=$name"; fail "$name: job still running after $((SECONDS - start)) s"; }
    sleep 0.2
  done
  local rc; rc=$(cat "$WORK/$name.rc")
  [ "$rc" -ne 0 ] || fail "$name: job exited 0 after losing a rank"
  ! pgrep -f "logging.name=$name" > /dev/null || fail "$name: ranks left running"
  echo "$name: job ended with exit code $rc after $((SECONDS - start)) s"
}

start_job killed
kill -9 "$(rank_pid killed 1)"
expect_job_ends killed
grep -E "rank 1 .*(exited on signal 9|Killed)" "$WORK/killed.log" ||
  { cat "$WORK/killed.log"; fail "killed: the output does not name rank 1"; }

start_job stopped
kill -STOP "$(rank_pid stopped 2)"
expect_job_ends stopped
grep -E "^pptrain: error: rank [0-9]: waited [0-9.]+ s for .*((from|to) rank 2 \(runtime|nothing came from rank 2[,:])" "$WORK/stopped.log" ||
  { cat "$WORK/stopped.log"; fail "stopped: no timeout error naming rank 2"; }

start_job stopped_replica --set pipeline.stages=2 --set parallel.data=2 --set parallel.grad_bucket_mib=0
kill -STOP "$(rank_pid stopped_replica 1)"
expect_job_ends stopped_replica
grep -E "^pptrain: error: rank [0-9]: waited [0-9.]+ s for .*(rank 1[ ,:(]|ranks 0, 1)" "$WORK/stopped_replica.log" ||
  { cat "$WORK/stopped_replica.log"; fail "stopped_replica: no timeout error naming rank 1 or its replica group"; }
