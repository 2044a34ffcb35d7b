#include "runtime/generate.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pptrain {

int sample_token(const float* logits, int vocab_size, Rng& rng) {
  const float max_logit = *std::max_element(logits, logits + vocab_size);
  std::vector<double> probs(vocab_size);
  double sum = 0.0;
  for (int v = 0; v < vocab_size; ++v) sum += probs[v] = std::exp(double(logits[v]) - max_logit);
  double u = rng.uniform() * sum;
  for (int v = 0; v < vocab_size; ++v) {
    u -= probs[v];
    if (u < 0.0) return v;
  }
  return vocab_size - 1;
}

}  // namespace pptrain
