// The CPU backend of StageModel: host memory, kernels/cpu (fp32, OpenBLAS matmuls, OpenMP).
// Besides the interface it exposes its host arrays directly, for tests and tools.
#pragma once

#include <algorithm>
#include <vector>

#include "model/layer_gradients.h"
#include "model/stage_model.h"
#include "model/stash_layout.h"

namespace pptrain {

struct CpuStash final : Stash {
  std::vector<int> tokens;         // (B,T), first stage: the encoder backward needs them
  FloatBuffer input;               // (B,T,C), other stages: the received activations
  std::vector<FloatBuffer> layer;  // one buffer per layer of the stage (a Full block: its output)
  bool head_grads = false;         // its forward made the head's dlnf and LM-head weight gradient
  // Split backward: per layer, the gradients backward_input keeps for backward_weight
  // (model/layer_gradients.h); from the model's pool, back to it after backward_weight.
  std::vector<FloatBuffer> kept_gradients;
};

class CpuStageModel final : public StageModel {
 public:
  CpuStageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch,
                std::uint64_t seed, MemoryTracker& memory);
  ~CpuStageModel() override;

  std::unique_ptr<Stash> make_stash(int batch, Recompute recompute) override;
  std::size_t activation_words(int batch) const override;
  std::unique_ptr<WordBuffer> make_message_buffer(std::size_t words) override;
  void forward(Stash& stash, const int* tokens, const float* input, const int* targets,
               float dloss_scale, bool need_grad) override;
  double take_loss_sum() override;
  const float* output(const Stash& stash) const override;
  void copy_logits_row(const Stash& stash, int row, std::vector<float>& out) const override;
  void copy_input_grad(float* dst, int batch) const override;
  float* grads() override { return grads_.data(); }
  std::size_t grad_words() const override { return num_params(); }
  float* grad(const std::string& name) override { return grads_.data() + table_.find(name).offset; }
  void zero_grads() override { grads_.zero(); }
  double grad_sum_of_squares(bool without_tied_wte) override;
  void sum_tied_wte_grads(StageModel& other) override;
  void optimizer_step(const TrainingConfig& training, float lr, int t, float grad_scale) override;
  void read_params(float* dst) const override;
  void read_grads(float* dst) const override { std::copy_n(grads_.data(), num_params(), dst); }
  void write_params(const float* src) override;
  void read_moments(float* m, float* v) const override;
  void write_moments(const float* m, const float* v) override;

  // Host views (tests, tools).
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* param(const std::string& name) { return params_.data() + table_.find(name).offset; }
  // (B,T,Vp), last stage: of its latest forward, which ran without gradient.
  const float* logits(const Stash& stash) const;
  const float* losses(const Stash& stash) const;  // (B,T), last stage with targets
  const float* input_grad() const;                // (B,T,C) after backward, not the first stage

 protected:
  void run_backward(Stash& stash, const float* dout, bool split, const LayerGradsDone& done) override;
  void run_weight_grads(Stash& stash, const LayerGradsDone& done) override;
  std::size_t grad_word_offset(std::size_t entry) const override;

 private:
  struct LayerTensors {
    std::vector<float*> p, g;  // in GPT2Shape::layer_params order
  };
  using LayerGradients = pptrain::LayerGradients<float>;  // model/layer_gradients.h
  using BlockActs = BlockActivations<float*>;  // model/stash_layout.h
  void forward_block(int B, int layer, const float* x, const BlockActs& a);
  // Where the stash's block keeps its activations (Full: recomputed_'s; Selective: the
  // pointwise pieces in pointwise_), as they are; block_activations first remakes what the
  // stash does not keep: for Full everything, for Selective the pointwise pieces, and only
  // when `for_weight_grads` (an input gradient reads none of them).
  BlockActs stash_activations(CpuStash& stash, int layer);
  BlockActs block_activations(CpuStash& stash, int layer, bool for_weight_grads);
  const float* block_output(const CpuStash& stash, int layer) const;
  LayerGradients layer_gradients(CpuStash& stash, int layer, bool split);
  const float* layer_input(const CpuStash& stash, int layer) const;
  void head_input_grad(CpuStash& stash, int layer, const LayerGradients& g, float* dinp);
  void head_weight_grads(CpuStash& stash, int layer, const LayerGradients& g);
  void embedding_weight_grads(CpuStash& stash, const LayerGradients& g);
  void block_input_grad(int B, int layer, const float* x, const BlockActs& a, const LayerGradients& g,
                        float* dinp);
  void block_weight_grads(int B, int layer, const float* x, const BlockActs& a, const LayerGradients& g);

  MemoryTracker& memory_;
  FloatBuffer params_, grads_, adam_m_, adam_v_;
  std::vector<LayerTensors> layers_;  // index: layer - first_layer
  // Backward scratch shared by all micro-batches (backwards run one at a time), sized for
  // max_batch: gradient ping-pong between layers and per-block intermediates.
  FloatBuffer grad_a_, grad_b_, scratch_;
  // One block's activations at max_batch, for stashes that keep only block outputs
  // (Recompute::Full): allocated with the first of them. One block's pointwise pieces at
  // max_batch (CpuPointwiseLayout), for Recompute::Selective stashes, likewise.
  FloatBuffer recomputed_, pointwise_;
  // Last stage: the logits (max_batch*T, Vp) of its latest forward, dlogits after one with
  // gradient; shared by all micro-batches (the forward consumes them at once).
  FloatBuffer logits_;
  const Stash* logits_owner_ = nullptr;
  // Kept-gradient sets no stash holds: a set serves one micro-batch from its I to its W, so a
  // rank allocates as many as it has micro-batches between the two at once, not one per stash.
  std::vector<std::vector<FloatBuffer>> kept_pool_;
  float* input_grad_ = nullptr;
  double loss_sum_ = 0.0;
};

}  // namespace pptrain
