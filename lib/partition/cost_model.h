// Per-layer costs that the cost-based partitioners balance (DESIGN.md section 7). A cost
// vector has one entry per model layer (GPT2Shape::num_layers(): embedding, blocks, head)
// and feeds min_max_partition (partition.h); any non-negative unit works.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2_shape.h"

namespace pptrain {

// Parameters the layer's stage holds for it. The head counts the tied wte (Vp x C) too: its
// LM-head matmul reads all of wte, and the last stage keeps its own copy of it.
std::size_t layer_parameters(const GPT2Shape& shape, int layer);

// Forward + backward FLOPs of one layer for a micro-batch of B sequences of T tokens,
// counting matmuls only (LayerNorm, GELU, softmax, bias adds and the embedding lookup are
// O(B T C) and left out). A matmul with a (out, in) weight costs 2 * out * in FLOPs per token
// forward and twice that backward (dinp and dweight), so 6 * weights-in-matmuls * tokens:
//   embedding  0                                   (a gather, no matmul)
//   block      6 * 12 C^2 * B T                    (qkv 3C^2, attproj C^2, fc 4C^2, fcproj 4C^2)
//            + 12 * B * T^2 * C                    (attention: Q K^T and att V, 2 T^2 C each
//                                                   forward, x3 with backward)
//   head       6 * Vp * C * B T                    (logits against the padded vocab)
// Attention counts the full T x T score matrix, not the causal half, as PaLM's MFU formula
// does (6N + 12 L C T per token), so these sum to the FLOPs an MFU figure assumes.
double layer_flops(const GPT2Shape& shape, int layer, int B, int T);

// The same FLOPs by the action that runs them in this implementation: the forward (F), the
// backward's input half (I) and weight half (W). A block's matmuls cost the same in each
// (2 x weights x tokens); attention has no weights, so its backward (twice the forward's
// 4 B T^2 C) is all I. The head's forward also runs its matmul's backward (model/stash_layout.h:
// dlnf and the LM head's weight gradient, while the dlogits exist), so all 6 Vp C B T are F.
struct LayerFlops {
  double forward = 0.0, backward_input = 0.0, backward_weight = 0.0;
  double total() const { return forward + backward_input + backward_weight; }
};
LayerFlops layer_flops_by_action(const GPT2Shape& shape, int layer, int B, int T);

// One cost per layer for a cost-based partition method: "parameters" gives
// layer_parameters. "profile" (measured times) is named in DESIGN.md section 7 but not yet
// implemented; any other name throws.
std::vector<double> layer_costs(const GPT2Shape& shape, const std::string& method);

}  // namespace pptrain
