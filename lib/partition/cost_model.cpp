#include "partition/cost_model.h"

#include "core/error.h"

namespace pptrain {

std::size_t layer_parameters(const GPT2Shape& shape, int layer) {
  std::size_t n = 0;
  for (const ParamSpec& p : shape.layer_params(layer)) n += p.numel();
  return n;
}

LayerFlops layer_flops_by_action(const GPT2Shape& shape, int layer, int B, int T) {
  PPT_CHECK(B >= 1 && T >= 1, "layer_flops: B ({}) and T ({}) must be >= 1", B, T);
  const double C = shape.channels;
  const double tokens = static_cast<double>(B) * T;
  LayerFlops f;
  switch (shape.layer_kind(layer)) {
    case LayerKind::LayerKindEmbedding: break;
    case LayerKind::LayerKindHead: f.forward = 6.0 * shape.padded_vocab_size * C * tokens; break;
    case LayerKind::LayerKindBlock: {
      const double matmul = 2.0 * 12.0 * C * C * tokens, attention = 4.0 * tokens * T * C;
      f.forward = matmul + attention;
      f.backward_input = matmul + 2.0 * attention;
      f.backward_weight = matmul;
      break;
    }
  }
  return f;
}

double layer_flops(const GPT2Shape& shape, int layer, int B, int T) {
  return layer_flops_by_action(shape, layer, B, T).total();
}

std::vector<double> layer_costs(const GPT2Shape& shape, const std::string& method) {
  if (method == "parameters") {
    std::vector<double> costs(shape.num_layers());
    for (int layer = 0; layer < shape.num_layers(); ++layer) {
      costs[layer] = static_cast<double>(layer_parameters(shape, layer));
    }
    return costs;
  }
  if (method == "profile") {
    PPT_THROW("partition method 'profile' is not implemented yet; use parameters, uniform or "
              "manual");
  }
  PPT_THROW("no layer cost model for partition method '{}'; expected parameters", method);
}

}  // namespace pptrain
