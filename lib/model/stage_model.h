// A pipeline stage's slice of GPT-2: the contiguous layers [first_layer, end_layer) with
// their parameters, gradients and, per in-flight micro-batch, the stash of activations the
// backward needs. With first_layer = 0 and end_layer = num_layers() it is the whole model.
// Shapes are static: B <= max_batch sequences of exactly T = max_seq_len tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/memory.h"
#include "model/gpt2_shape.h"
#include "model/param_table.h"

namespace pptrain {

// Activations of one micro-batch on one stage, made by StageModel::make_stash; only
// StageModel reads its buffers (their layout is private to stage_model.cpp).
struct Stash {
  int B = 0;
  std::vector<int> tokens;         // (B,T), first stage: the encoder backward needs them
  FloatBuffer input;               // (B,T,C), other stages: the received activations
  std::vector<FloatBuffer> layer;  // one buffer per layer of the stage
  bool has_dlogits = false;        // the head's logits now hold dloss/dlogits
};

class StageModel {
 public:
  StageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch,
             std::uint64_t seed, MemoryTracker& memory);
  ~StageModel();
  StageModel(const StageModel&) = delete;
  StageModel& operator=(const StageModel&) = delete;

  const GPT2Shape& shape() const { return shape_; }
  int first_layer() const { return first_layer_; }
  int end_layer() const { return end_layer_; }
  bool has_embedding() const { return first_layer_ == 0; }
  bool has_head() const { return end_layer_ == shape_.num_layers(); }

  std::unique_ptr<Stash> make_stash(int batch);

  // First stage: tokens (B,T). Other stages: input (B,T,C), copied into the stash.
  // Last stage with targets (B,T): returns the micro-batch's mean loss; with need_grad it
  // also keeps dloss_scale * dloss/dlogits for backward. Without targets: logits only.
  // Other stages return 0 and leave their output in output(stash).
  float forward(Stash& stash, const int* tokens, const float* input, const int* targets,
                float dloss_scale, bool need_grad);
  const float* output(const Stash& stash) const;  // (B,T,C), not on the last stage
  const float* logits(const Stash& stash) const;  // (B,T,Vp), last stage, no targets
  const float* losses(const Stash& stash) const;  // (B,T), last stage with targets

  // Accumulates parameter gradients. dout (B,T,C) is the gradient of the stage output
  // (ignored on the last stage). Afterwards input_grad() holds d(input), except on the first.
  void backward(Stash& stash, const float* dout);
  const float* input_grad() const;

  const ParamTable& table() const { return table_; }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_.data(); }
  std::size_t num_params() const { return table_.total_floats(); }
  float* param(const std::string& name) { return params_.data() + table_.find(name).offset; }
  float* grad(const std::string& name) { return grads_.data() + table_.find(name).offset; }
  void zero_grads() { grads_.zero(); }

 private:
  struct LayerTensors {
    std::vector<float*> p, g;  // in GPT2Shape::layer_params order
  };
  void forward_block(Stash& stash, int layer, const float* x);
  void backward_block(Stash& stash, int layer, const float* x, const float* dout, float* dinp);

  GPT2Shape shape_;
  int first_layer_, end_layer_, max_batch_;
  MemoryTracker& memory_;
  ParamTable table_;
  FloatBuffer params_, grads_;
  std::vector<LayerTensors> layers_;  // index: layer - first_layer
  // Backward scratch shared by all micro-batches (backwards run one at a time), sized for
  // max_batch: gradient ping-pong between layers and per-block intermediates.
  FloatBuffer grad_a_, grad_b_, scratch_;
  float* input_grad_ = nullptr;
};

}  // namespace pptrain
