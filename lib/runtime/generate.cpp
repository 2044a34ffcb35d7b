#include "runtime/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace pptrain {

std::vector<int> generate_tokens(StageModel& model, const std::vector<int>& prompt, int n,
                                 std::uint64_t seed) {
  PPT_CHECK(model.has_embedding() && model.has_head(), "sampling needs the whole model on one stage");
  PPT_CHECK(!prompt.empty(), "sampling needs a non-empty prompt");
  const GPT2Shape& s = model.shape();
  const int T = s.max_seq_len;
  auto stash = model.make_stash(1);
  std::vector<int> tokens = prompt;
  std::vector<int> window(T, 0);
  std::vector<double> probs(s.vocab_size);
  Rng rng(stream_key(seed, "sample"));
  for (int i = 0; i < n; ++i) {
    const int len = std::min<int>(static_cast<int>(tokens.size()), T);
    std::fill(window.begin(), window.end(), 0);
    std::copy(tokens.end() - len, tokens.end(), window.begin());
    model.forward(*stash, window.data(), nullptr, nullptr, 0.0f, false);
    const float* row = model.logits(*stash) + static_cast<std::size_t>(len - 1) * s.padded_vocab_size;
    const float max_logit = *std::max_element(row, row + s.vocab_size);
    double sum = 0.0;
    for (int v = 0; v < s.vocab_size; ++v) sum += probs[v] = std::exp(double(row[v]) - max_logit);
    double u = rng.uniform() * sum;
    int next = s.vocab_size - 1;
    for (int v = 0; v < s.vocab_size; ++v) {
      u -= probs[v];
      if (u < 0.0) {
        next = v;
        break;
      }
    }
    tokens.push_back(next);
  }
  return tokens;
}

}  // namespace pptrain
