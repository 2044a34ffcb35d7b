// The bytes a stage model allocates, piece by piece, computed without making one: the memory
// plan (runtime/memory_plan.h) multiplies these by how many of each a schedule keeps. Each
// figure is what the backend counts in its MemoryTracker (host memory for the CPU backend,
// GPU memory for the CUDA one), from the same layouts (model/stash_layout.h); the [model]
// and [cuda] tests check every field against a real stage model's tracker.
#pragma once

#include <cstddef>

#include "model/gpt2_shape.h"
#include "model/stage_model.h"

namespace pptrain {

// Which StageModel: the CPU backend (fp32), or the CUDA one with `element_bytes` per stored
// activation and weight (4: fp32, 2: bf16).
struct StageBackend {
  bool cuda = false;
  std::size_t element_bytes = 4;
};

struct StageFootprint {
  // Made by the constructor.
  std::size_t params = 0, grads = 0, optimizer = 0, workspace = 0;
  // Made with the first stash that keeps block outputs only (Recompute::Full): one block's
  // activations at max_batch; with the first Recompute::Selective stash: one block's
  // pointwise pieces. 0 for a stage without blocks.
  std::size_t recompute_workspace = 0, selective_workspace = 0;
  // One make_stash(batch, Recompute::None, ::Selective, ::Full).
  std::size_t stash = 0, selective_stash = 0, full_stash = 0;
  std::size_t stash_bytes(Recompute r) const {
    return r == Recompute::Full ? full_stash : r == Recompute::Selective ? selective_stash : stash;
  }
  std::size_t recompute_workspace_bytes(Recompute r) const {
    return r == Recompute::Full ? recompute_workspace : r == Recompute::Selective ? selective_workspace : 0;
  }
  // What a stash keeps between a split backward's I and W, made by its first backward_input.
  std::size_t kept_gradients = 0;
  // One make_message_buffer(activation_words(batch)).
  std::size_t message = 0;
};

// For layers [first_layer, end_layer) with stashes of `batch` sequences (= max_batch).
StageFootprint stage_footprint(const StageBackend& backend, const GPT2Shape& shape,
                               int first_layer, int end_layer, int batch);

// Device memory one ComputeDevice allocates whatever the stages (the cuBLASLt workspace).
std::size_t compute_device_footprint();

// Approximate: the CUDA encoder backward's scratch (the token sort). The real op asks CUB for
// its sort storage at run time; the plan counts what the emulated build allocates, 4 N ints.
std::size_t planned_encoder_scratch_bytes(int batch, int T);

}  // namespace pptrain
