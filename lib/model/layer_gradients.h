// Where a stage model's backward puts the gradients that a layer's parameter gradients are
// made from: the output gradients of its weighted ops, N = B*T rows each. The input half of
// the backward writes them, the weight half reads them (StageModel::backward_input /
// backward_weight). One layout for both backends: T is float on the CPU, char (bytes) on the
// GPU, and `unit` is the size of one (N,C) tensor in T.
//
// A whole backward keeps them in the block scratch (14 units): dfch_gelu [0,4) (the product
// before GELU's derivative), dfch [4,8), dln2 [8,9), dres2 [9,10), datty [10,11), dqkv [11,14);
// dln1 reuses [0,1), dead once GELU's backward has run. A split backward keeps them in a
// kept set, one buffer per layer: 11 units a block (dout, dfch, dln2, dres2, dqkv, dln1) and
// 1 for the embedding (dout). The head keeps none: its forward already made dlnf, in the
// stash (model/stash_layout.h), and the LM head's weight gradient.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "model/gpt2_shape.h"

namespace pptrain {

inline constexpr std::size_t kBlockScratchUnits = 14;
inline constexpr std::size_t kScratchDfchGelu = 0, kScratchDatty = 10;  // units into scratch

template <typename T>
struct LayerGradients {
  T* dout = nullptr;   // (N,C) the layer's output gradient (a whole backward: the caller's)
  T* dfch = nullptr;   // (N,4C) before the GELU
  T* dln2 = nullptr;   // (N,C) of ln2's output
  T* dres2 = nullptr;  // (N,C) of the attention residual
  T* dqkv = nullptr;   // (N,3C)
  T* dln1 = nullptr;   // (N,C) of ln1's output
  T* dlnf = nullptr;   // (N,C) of the final layernorm's output: the head's, in its stash
};

// Units of the stash buffer a split backward keeps for a layer.
inline std::size_t kept_gradient_units(LayerKind kind) {
  switch (kind) {
    case LayerKind::LayerKindBlock: return 11;
    case LayerKind::LayerKindEmbedding: return 1;
    case LayerKind::LayerKindHead: break;
  }
  return 0;
}

// A set of per-layer kept buffers for a stash's split backward: one from `pool` when it has
// one, else `layers` empty buffers that the caller sizes on first use.
template <typename Buffer>
void take_kept_gradients(std::vector<std::vector<Buffer>>& pool, std::vector<Buffer>& set, int layers) {
  if (pool.empty()) {
    set.resize(layers);
    return;
  }
  set = std::move(pool.back());
  pool.pop_back();
}

// The pointers into `base`: the block scratch (split false) or the layer's kept buffer.
template <typename T>
LayerGradients<T> carve_layer_gradients(T* base, std::size_t unit, LayerKind kind, bool split) {
  LayerGradients<T> g;
  switch (kind) {
    case LayerKind::LayerKindHead: break;  // the caller points dlnf into the stash
    case LayerKind::LayerKindEmbedding: g.dout = split ? base : nullptr; break;
    case LayerKind::LayerKindBlock:
      if (split) {
        g.dout = base;
        g.dfch = base + unit;
        g.dln2 = base + 5 * unit;
        g.dres2 = base + 6 * unit;
        g.dqkv = base + 7 * unit;
        g.dln1 = base + 10 * unit;
      } else {
        g.dfch = base + 4 * unit;
        g.dln2 = base + 8 * unit;
        g.dres2 = base + 9 * unit;
        g.dqkv = base + 11 * unit;
        g.dln1 = base;
      }
      break;
  }
  return g;
}

}  // namespace pptrain
