// The GPT-2 model as a list of pipeline layers (DESIGN.md section 2):
//   layer 0            embedding      wte (Vp,C), wpe (maxT,C)
//   layers 1..L        block l-1      ln1w ln1b qkvw (3C,C) qkvb attprojw (C,C) attprojb
//                                     ln2w ln2b fcw (4C,C) fcb fcprojw (C,4C) fcprojb
//   layer L+1          head           lnfw lnfb, and wte tied with the embedding
// Names and shapes follow llm.c's 16-tensor order; Linear weights are stored (out, in).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace pptrain {

enum class LayerKind { LayerKindEmbedding, LayerKindBlock, LayerKindHead };

struct ParamSpec {
  std::string name;        // e.g. "wte", "h.3.qkvw", "lnfw"
  std::vector<int> shape;  // row-major
  bool decay = false;      // AdamW weight decay: 2-D weights only
  double init_std = 0.0;   // normal(0, init_std); 0 = constant init_value
  float init_value = 0.0f;
  std::size_t numel() const;
};

struct GPT2Shape {
  int vocab_size = 0;         // V: real tokens
  int padded_vocab_size = 0;  // Vp >= V; padded logits never enter the loss
  int max_seq_len = 0;        // maxT
  int n_layer = 0;            // L
  int n_head = 0;             // NH
  int channels = 0;           // C

  static GPT2Shape from_config(const Config& config);
  int num_layers() const { return n_layer + 2; }
  LayerKind layer_kind(int layer) const;
  std::string layer_name(int layer) const;  // "embedding", "block 3", "head"
  // The tensors a layer uses, in llm.c order. The head lists the tied "wte" too.
  std::vector<ParamSpec> layer_params(int layer) const;
  std::size_t num_parameters() const;  // unique parameters of the whole model (wte once)
};

}  // namespace pptrain
