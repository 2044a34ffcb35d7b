// Hugging Face GPT-2 (transformers.GPT2LMHeadModel) as a directory:
//   model.safetensors  F32 tensors under HF's names: transformer.wte.weight (V,C) — the
//                      padded rows dropped —, transformer.wpe.weight (maxT,C),
//                      transformer.h.<l>.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,
//                      mlp.c_proj}.{weight,bias}, transformer.ln_f.{weight,bias}; no lm_head
//                      (tied to wte). HF's Conv1D stores (in, out): c_attn.weight is (C,3C),
//                      the transpose of our qkvw (3C,C), and likewise c_proj, c_fc, mlp.c_proj.
//   config.json        model_type gpt2, vocab_size, n_positions = n_ctx, n_embd, n_layer,
//                      n_head, layer_norm_epsilon 1e-5, activation_function gelu_new, tied.
// `GPT2LMHeadModel.from_pretrained(dir)` computes the same function as our model on the V
// real tokens (test/integration/hf_reference.py checks the loss independently).
#pragma once

#include <string>

#include "io/model_files.h"

namespace pptrain {

// Creates dir if needed; each file is written to .tmp and renamed.
void export_hf_gpt2(const std::string& dir, const GPT2Shape& shape, const NamedTensors& tensors);

// The inverse: `path` is such a directory, or its model.safetensors with config.json beside
// it. Tensor names may lack the "transformer." prefix (as in the hub's own gpt2 files);
// attention-mask buffers are skipped and an lm_head, if present, must equal wte. wte gets
// Vp = V rounded up to a multiple of 128 rows, the padding zero. Checks config.json (the
// architecture options our model implements) and every tensor's shape, naming the file.
ModelFile read_hf_gpt2(const std::string& path);

// Vp for a vocab of V: llm.c's padding to a multiple of 128 (as config's padded_vocab()).
int hf_padded_vocab(int vocab_size);

}  // namespace pptrain
