// The whole model (or any part of it) as tensors by name: the common currency of
// checkpoints, llm.c model files and Hugging Face exports. Names are the parameter table's
// (llm.c's): "wte", "wpe", "h.<l>.qkvw", ..., "lnfw", "lnfb"; wte appears once.
#pragma once

#include <map>
#include <string>

#include "io/safetensors.h"
#include "model/stage_model.h"

namespace pptrain {

using NamedTensors = std::map<std::string, LoadedTensor>;

// Copies every tensor of the stage's table from `tensors` (prefix + name), checking that
// each is present with the table's shape; errors name `source` and the tensor.
void load_stage_tensors(const NamedTensors& tensors, const std::string& prefix, const ParamTable& table,
                        float* dst, const std::string& source);

// The stage's tensors (prefix + name) from a flat array in table order.
void add_stage_tensors(NamedTensors& out, const std::string& prefix, const ParamTable& table, const float* src);

}  // namespace pptrain
