// A pipeline stage's slice of GPT-2, whatever runs it: the contiguous layers
// [first_layer, end_layer) with their parameters, gradients, AdamW moments and, per in-flight
// micro-batch, the stash of activations the backward needs. With first_layer = 0 and
// end_layer = num_layers() it is the whole model. Shapes are static: B <= max_batch sequences
// of exactly T = max_seq_len tokens.
//
// Two backends implement it: CpuStageModel (host memory, kernels/cpu) and CudaStageModel (GPU
// memory, kernels/cuda, fp32 or bf16 storage). "Backend memory" below means host memory for
// the first and device memory for the second: the executor hands such pointers to the
// transport, which knows which kind it moves (comm/transport.h). Token ids and targets always
// come from the host. Activation messages are counted in 4-byte words (activation_words), so a
// bf16 activation of n values travels as ceil(n/2) words.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/memory.h"
#include "kernels/adamw.h"
#include "model/gpt2_shape.h"
#include "model/param_table.h"

namespace pptrain {

class ComputeDevice;

// What a stash keeps of each transformer block (the embedding and the head always keep all):
//   None: every activation its backward reads (per block about 16 (N,C) tensors, plus the
//         (B,NH,T,T) attention probabilities on the CPU), N = B*T rows;
//   Selective: all but the three a pointwise kernel remakes from kept ones: ln1 (from the
//         block input), ln2 (from res2) and the GELU output (from fch), 6 of the 16 (N,C)
//         units; the forward writes them to, and the backward that makes weight gradients
//         remakes them in, one workspace per model (an I of a split backward reads none).
//   Full: only the block's output, one (N,C) tensor; the backward first recomputes the
//         block's forward from its input into one workspace that all micro-batches share
//         (a split backward recomputes it for I and again for W).
// Same results for all three, bitwise: a recomputation runs the same kernels on the same
// inputs.
enum class Recompute { None, Selective, Full };
// pipeline.recompute's value ("none", "selective", "full") as the enum; throws for another.
Recompute recompute_of(std::string_view name);

// Activations of one micro-batch on one stage, made by make_stash; only the backend that
// made it reads it.
struct Stash {
  virtual ~Stash() = default;
  int B = 0;
  Recompute recompute = Recompute::None;
  bool weight_grads_pending = false;  // backward_input ran, backward_weight not yet
};

// A message-sized buffer in backend memory (received activations, gradients to send).
class WordBuffer {
 public:
  virtual ~WordBuffer() = default;
  virtual float* data() = 0;
};

class StageModel {
 public:
  StageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch);
  virtual ~StageModel() = default;
  StageModel(const StageModel&) = delete;
  StageModel& operator=(const StageModel&) = delete;

  const GPT2Shape& shape() const { return shape_; }
  int first_layer() const { return first_layer_; }
  int end_layer() const { return end_layer_; }
  bool has_embedding() const { return first_layer_ == 0; }
  bool has_head() const { return end_layer_ == shape_.num_layers(); }
  const ParamTable& table() const { return table_; }
  std::size_t num_params() const { return table_.total_floats(); }

  virtual std::unique_ptr<Stash> make_stash(int batch, Recompute recompute) = 0;
  // 4-byte words of one (batch,T,C) activation message in backend memory.
  virtual std::size_t activation_words(int batch) const = 0;
  virtual std::unique_ptr<WordBuffer> make_message_buffer(std::size_t words) = 0;

  // First stage: tokens (B,T) on the host. Other stages: input (B,T,C) in backend memory,
  // copied into the stash. Last stage with targets (B,T, host): adds the micro-batch's mean
  // loss to the loss sum (take_loss_sum); with need_grad it keeps dloss_scale * dloss/dlogits
  // for backward. Without targets it keeps the logits. Other stages leave their output in
  // output(stash).
  virtual void forward(Stash& stash, const int* tokens, const float* input, const int* targets,
                       float dloss_scale, bool need_grad) = 0;
  // The sum of the micro-batch mean losses since the last call, then resets it. On the GPU
  // this is the one device-to-host read of a step.
  virtual double take_loss_sum() = 0;
  virtual const float* output(const Stash& stash) const = 0;  // (B,T,C) backend memory
  // Row `row` of a last-stage forward's logits (no targets), Vp floats, on the host.
  virtual void copy_logits_row(const Stash& stash, int row, std::vector<float>& out) const = 0;

  // Accumulates parameter gradients. dout (B,T,C, backend memory) is the gradient of the stage
  // output (ignored on the last stage). Afterwards, except on the first stage,
  // copy_input_grad writes d(input) (activation_words(B) words) to `dst` (backend memory).
  //
  // `done`, when given, is called with each layer whose parameter gradients this call has
  // just completed, top down (on a GPU: once the kernels making them are queued), so their
  // data-parallel reduction can start while the layers below still run
  // (runtime/grad_reduction.h).
  using LayerGradsDone = std::function<void(int layer)>;
  void backward(Stash& stash, const float* dout, const LayerGradsDone& done = nullptr);
  virtual void copy_input_grad(float* dst, int batch) const = 0;

  // The same backward in two halves, for zero-bubble schedules (I and W actions):
  // backward_input makes d(input) (copy_input_grad works after it, as after backward) and
  // keeps in the stash the gradients the weight half needs; backward_weight, later, then
  // accumulates the parameter gradients. Together they give bitwise what backward gives, and
  // the stash stays in use until backward_weight. Out of order (W without its I, I twice, B
  // between I and W) they throw.
  void backward_input(Stash& stash, const float* dout);
  void backward_weight(Stash& stash, const LayerGradsDone& done = nullptr);

  // fp32 gradients in backend memory: all of them (grad_words() words: the device layout
  // may pad between tensors, with zeros), or one tensor by name.
  virtual float* grads() = 0;
  virtual std::size_t grad_words() const = 0;
  virtual float* grad(const std::string& name) = 0;
  // Where `layer`'s own parameters' gradients lie in grads(): words [begin, end), padding
  // included; a layer owns the tensors it added to the table (a stage holding the embedding
  // and the head has one wte, the embedding's).
  struct LayerGradWords {
    std::size_t begin = 0, end = 0;
    bool holds_tied_wte = false;  // its tensors include wte
  };
  LayerGradWords layer_grad_words(int layer) const;
  virtual void zero_grads() = 0;
  // Sum of squared gradients; without_tied_wte leaves out this stage's wte (the head's copy
  // of the tied embedding, counted once by the first stage). Reads back to the host.
  virtual double grad_sum_of_squares(bool without_tied_wte) = 0;
  // This stage and `other` (same backend) hold the two copies of the tied wte on one rank:
  // both gradients become their sum.
  virtual void sum_tied_wte_grads(StageModel& other) = 0;
  // One AdamW step over every parameter (weight decay where the spec says so); t counts
  // optimizer steps from 1. grad_scale multiplies the gradients as AdamW reads them: the clip
  // factor, 1 for none (kernels/adamw.h).
  virtual void optimizer_step(const TrainingConfig& training, float lr, int t, float grad_scale) = 0;

  // Host copies in table order (num_params floats): parameters, gradients (tests, tools) and
  // AdamW moments.
  virtual void read_params(float* dst) const = 0;
  virtual void read_grads(float* dst) const = 0;
  virtual void write_params(const float* src) = 0;
  virtual void read_moments(float* m, float* v) const = 0;
  virtual void write_moments(const float* m, const float* v) = 0;

 protected:
  // The backends' halves: the input gradients (and, unless split, each layer's parameter
  // gradients right after its own), and the parameter gradients of a split backward.
  virtual void run_backward(Stash& stash, const float* dout, bool split, const LayerGradsDone& done) = 0;
  virtual void run_weight_grads(Stash& stash, const LayerGradsDone& done) = 0;
  // The first word of table entry `entry`'s gradient in grads().
  virtual std::size_t grad_word_offset(std::size_t entry) const = 0;

  GPT2Shape shape_;
  int first_layer_, end_layer_, max_batch_;
  ParamTable table_;
  // Layer first_layer + i owns table entries [layer_entries_[i], layer_entries_[i + 1]).
  std::vector<std::size_t> layer_entries_;
};

// The AdamW hyper-parameters of `training`, the step's lr, t (from 1) and clip factor.
kernels::AdamwStep adamw_step(const TrainingConfig& training, float lr, int t, float grad_scale);

// The backend `device` selects (nullptr: the CPU); parameters initialised from `seed`
// identically on every backend.
std::unique_ptr<StageModel> make_stage_model(const GPT2Shape& shape, int first_layer,
                                             int end_layer, int max_batch, std::uint64_t seed,
                                             MemoryTracker& host_memory, ComputeDevice* device);

}  // namespace pptrain
