#include "runtime/train_step.h"

#include <cmath>
#include <vector>

#include "kernels/grad_norm.h"
#include "runtime/lr_schedule.h"

namespace pptrain {

void clip_gradients(float* grads, std::size_t n, double norm, double max_norm) {
  if (max_norm > 0.0 && norm > max_norm) {
    kernels::cpu::scale_in_place(grads, n, static_cast<float>(max_norm / norm));
  }
}

StepResult train_step_whole_model(StageModel& model, Stash& stash, AdamWOptimizer& optimizer,
                                  const TrainingConfig& training, int step, int micro_batches,
                                  const BatchFiller& fill) {
  const std::size_t tokens = static_cast<std::size_t>(stash.B) * model.shape().max_seq_len;
  std::vector<int> inputs(tokens), targets(tokens);
  // Each token's loss is scaled by 1/(all tokens of the step), so the accumulated gradient
  // is the gradient of the step's mean loss whatever m is.
  const float dloss_scale = 1.0f / static_cast<float>(tokens * micro_batches);
  StepResult r;
  model.zero_grads();
  for (int mb = 0; mb < micro_batches; ++mb) {
    fill(mb, inputs.data(), targets.data());
    r.loss += model.forward(stash, inputs.data(), nullptr, targets.data(), dloss_scale, true);
    model.backward(stash, nullptr);
  }
  r.loss /= micro_batches;
  r.grad_norm = std::sqrt(kernels::cpu::sum_of_squares(model.grads(), model.num_params()));
  clip_gradients(model.grads(), model.num_params(), r.grad_norm, training.grad_clip);
  r.lr = learning_rate(training, step);
  optimizer.step(model.params(), model.grads(), static_cast<float>(r.lr), step + 1);
  return r;
}

}  // namespace pptrain
