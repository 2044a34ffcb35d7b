// Autoregressive sampling from a whole-model StageModel, for the sample printed at the end
// of training. Shapes are static (T = max_seq_len), so each new token runs one forward of a
// (1, T) window; positions after the context are padding that causal attention ignores.
#pragma once

#include <cstdint>
#include <vector>

#include "model/stage_model.h"

namespace pptrain {

// Returns prompt followed by n sampled tokens (temperature 1, from Rng(seed, "sample")).
std::vector<int> generate_tokens(StageModel& model, const std::vector<int>& prompt, int n,
                                 std::uint64_t seed);

}  // namespace pptrain
