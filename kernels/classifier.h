// Fused classifier: softmax + cross-entropy (+ dlogits) in one pass per row, never storing
// probabilities. logits (N,Vp) with only the first V columns real (the vocab is padded).
// losses (N) receive -log softmax(logits)[target]. If compute_grad, logits are overwritten
// in place with dloss_scale * d(loss_row)/d(logits) = dloss_scale * (softmax - onehot);
// the padded columns get 0. Targets must lie in [0, V).
#pragma once

namespace pptrain::kernels::cpu {

template <typename F>
void classifier_forward_backward(F* logits, F* losses, const int* targets, int N, int V, int Vp,
                                 F dloss_scale, bool compute_grad);

}  // namespace pptrain::kernels::cpu
