#include "model/gpt2_shape.h"

#include <cmath>

#include "core/error.h"

namespace pptrain {

std::size_t ParamSpec::numel() const {
  std::size_t n = 1;
  for (int d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

GPT2Shape GPT2Shape::from_config(const Config& config) {
  GPT2Shape s;
  s.vocab_size = config.model.vocab_size;
  s.padded_vocab_size = config.padded_vocab();
  s.max_seq_len = config.model.seq_len;
  s.n_layer = config.model.n_layer;
  s.n_head = config.model.n_head;
  s.channels = config.model.channels;
  PPT_CHECK(s.channels % s.n_head == 0, "model.channels ({}) must be divisible by model.n_head ({})",
            s.channels, s.n_head);
  return s;
}

LayerKind GPT2Shape::layer_kind(int layer) const {
  PPT_CHECK(layer >= 0 && layer < num_layers(), "layer {} out of range [0, {})", layer,
            num_layers());
  if (layer == 0) return LayerKind::LayerKindEmbedding;
  if (layer == n_layer + 1) return LayerKind::LayerKindHead;
  return LayerKind::LayerKindBlock;
}

std::string GPT2Shape::layer_name(int layer) const {
  switch (layer_kind(layer)) {
    case LayerKind::LayerKindEmbedding: return "embedding";
    case LayerKind::LayerKindHead: return "head";
    case LayerKind::LayerKindBlock: break;
  }
  return fmt::format("block {}", layer - 1);
}

std::vector<ParamSpec> GPT2Shape::layer_params(int layer) const {
  const int C = channels;
  // GPT-2 init: normal(0, 0.02); the two projections that write into the residual stream
  // are scaled by 1/sqrt(2L) so the stream's variance does not grow with depth.
  const double std_base = 0.02;
  const double std_residual = 0.02 / std::sqrt(2.0 * n_layer);
  auto weight = [](std::string name, std::vector<int> shape, double std) {
    return ParamSpec{std::move(name), std::move(shape), true, std, 0.0f};
  };
  auto constant = [](std::string name, int n, float value) {
    return ParamSpec{std::move(name), {n}, false, 0.0, value};
  };
  switch (layer_kind(layer)) {
    case LayerKind::LayerKindEmbedding:
      return {weight("wte", {padded_vocab_size, C}, std_base),
              weight("wpe", {max_seq_len, C}, std_base)};
    case LayerKind::LayerKindHead:
      return {constant("lnfw", C, 1.0f), constant("lnfb", C, 0.0f),
              weight("wte", {padded_vocab_size, C}, std_base)};
    case LayerKind::LayerKindBlock: break;
  }
  const std::string p = fmt::format("h.{}.", layer - 1);
  return {constant(p + "ln1w", C, 1.0f),
          constant(p + "ln1b", C, 0.0f),
          weight(p + "qkvw", {3 * C, C}, std_base),
          constant(p + "qkvb", 3 * C, 0.0f),
          weight(p + "attprojw", {C, C}, std_residual),
          constant(p + "attprojb", C, 0.0f),
          constant(p + "ln2w", C, 1.0f),
          constant(p + "ln2b", C, 0.0f),
          weight(p + "fcw", {4 * C, C}, std_base),
          constant(p + "fcb", 4 * C, 0.0f),
          weight(p + "fcprojw", {C, 4 * C}, std_residual),
          constant(p + "fcprojb", C, 0.0f)};
}

std::size_t GPT2Shape::num_parameters() const {
  std::size_t n = 0;
  for (int layer = 0; layer < num_layers(); ++layer) {
    for (const ParamSpec& p : layer_params(layer)) {
      if (layer_kind(layer) == LayerKind::LayerKindHead && p.name == "wte") continue;
      n += p.numel();
    }
  }
  return n;
}

}  // namespace pptrain
