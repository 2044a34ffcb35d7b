// A whole GPT-2 model as it lies in a file: its shape and its parameters by name (the
// parameter table's llm.c names, wte once, padded to Vp rows). The formats convert to and
// from this one form: llm.c model files (io/llmc_model.h), Hugging Face GPT-2 exports
// (io/hf_export.h), pptrain checkpoints (io/checkpoint.h) and `--save-params` directories.
#pragma once

#include <string>
#include <vector>

#include "io/named_tensors.h"
#include "model/gpt2_shape.h"

namespace pptrain {

struct ModelFile {
  GPT2Shape shape;
  NamedTensors tensors;  // parameters only
  int version = 0;       // llm.c: 3 (fp32) or 5 (bf16); 0 for the other formats
};

// Every parameter of the model once, in llm.c order: wte, wpe, h.0.ln1w ... h.<L-1>.fcprojb,
// lnfw, lnfb. The one list that the readers and writers of all formats walk.
std::vector<ParamSpec> model_param_specs(const GPT2Shape& shape);

// Checks the shape's sizes (positive, C % NH == 0, Vp >= V); `source` starts the message.
void check_model_shape(const GPT2Shape& shape, const std::string& source);

// Checks that `tensors` holds every parameter of `shape` with its shape (extra tensors, such
// as a checkpoint's AdamW state, are allowed and ignored by the writers).
void check_model_tensors(const GPT2Shape& shape, const NamedTensors& tensors, const std::string& source);

// The parameters of a model, by kind of path:
//   an llm.c model file (magic 20240326)          read_llmc_model
//   a Hugging Face GPT-2 directory (config.json +
//     model.safetensors) or its model.safetensors  read_hf_gpt2
//   a pptrain checkpoint directory (manifest.json)  its parameters, without the AdamW state
// For initialising training from a model file. Errors name the path and what is wrong.
ModelFile load_model_file(const std::string& path);

// A `pptrain train --save-params` directory: stage<S>.safetensors files that together hold
// every parameter (wte in the first and the last; both copies must agree). The files do not
// record the head count or the real vocab, so the caller supplies the shape from the run's
// config (`source` names it in errors); every tensor is checked against it.
ModelFile read_saved_params(const std::string& dir, const GPT2Shape& shape, const std::string& source);

// The parameters (no optimizer state) of a checkpoint directory, after its CRC checks.
ModelFile read_checkpoint_model(const std::string& checkpoint_dir);

// sqrt(sum of squares), accumulated in double: the norm `pptrain inspect` prints.
double tensor_norm(const LoadedTensor& t);

}  // namespace pptrain
