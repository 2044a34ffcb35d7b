# A step whose loss or grad norm is not finite is skipped (no update) and logged; after
# training.max_nonfinite_steps in a row the run stops with exit 1, naming the last good
# checkpoint, which stays loadable. An absurd learning rate makes the loss blow up.
source "$(dirname "$0")/common.sh"
make_tiny_corpus
write_tiny_config
rc=0
"$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 \
  --set training.lr=1e12 --set training.warmup_steps=0 --set training.grad_clip=0 \
  --set training.max_nonfinite_steps=3 --set checkpoint.every=1 --set logging.name=nf \
  > "$WORK/nf.log" 2>&1 || rc=$?
cat "$WORK/nf.log"
[ "$rc" -ne 0 ] || fail "a diverged run exited 0"
[ "$(grep -c 'not finite: update skipped' "$WORK/nf.log")" -eq 3 ] || fail "expected 3 skipped steps"
grep -E "^pptrain: error: .*not finite for 3 steps in a row .* the last good checkpoint is .*/step_0*1; " "$WORK/nf.log" ||
  fail "the stop does not name the last good checkpoint"
# The checkpoint of the last good step loads (resume with a sane learning rate).
"$MPIEXEC" -np 2 "$PPTRAIN_BIN" train "$WORK/tiny.yaml" --set pipeline.stages=2 --set logging.name=nf \
  --set checkpoint.resume=auto --set training.steps=3 > "$WORK/resume.log" 2>&1 ||
  { cat "$WORK/resume.log"; fail "the last good checkpoint did not load"; }
grep "resumed from .*step_0*1 after step 1" "$WORK/resume.log"
