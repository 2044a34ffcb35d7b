// The CUDA backend of StageModel (DESIGN.md section 3): the same layers as CpuStageModel, run
// by kernels/cuda on the ComputeDevice's stream. Storage precision is the device's dtype:
//   fp32: parameters, activations and their gradients in fp32 (tracks the CPU backend);
//   bf16: activations, their gradients and a working copy of the weights in bf16, with fp32
//         master weights, fp32 parameter gradients and fp32 AdamW moments; each AdamW step
//         writes the bf16 copy with stochastic rounding.
// Nothing inside a step reads the device from the host except take_loss_sum and
// grad_sum_of_squares, which the executor calls once per step, together.
// Parameters, gradients and moments live in flat device arrays whose tensors start on 256-byte
// boundaries (cuBLASLt's preferred alignment): "device offsets", padded with zeros, differ
// from the table's offsets; read_/write_ methods convert to table order.
// Compiled only in builds with the CUDA backend (PPTRAIN_WITH_CUDA).
#pragma once

#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"
#include "model/compute_device.h"
#include "model/layer_gradients.h"
#include "model/stage_model.h"
#include "model/stash_layout.h"

namespace pptrain {

struct CudaStash final : Stash {
  kernels::cuda::DeviceBuffer data;    // every activation of the micro-batch, carved in bytes
  std::size_t tokens = 0, input = 0;   // byte offsets: token ids (first stage), received input
  std::size_t targets = 0;             // byte offset: target ids (last stage)
  std::vector<std::size_t> layer;      // byte offset of each layer's activations (a Full block: its output)
  bool head_grads = false;  // its forward made the head's dlnf and LM-head weight gradient
  // Split backward: per layer, the gradients backward_input keeps for backward_weight
  // (model/layer_gradients.h); from the model's pool, back to it after backward_weight.
  std::vector<kernels::cuda::DeviceBuffer> kept_gradients;
  // Page-locked host copy of the ids and an event recorded after their upload: a copy from
  // pageable memory would make the host wait for the whole stream first. Defined in the .cpp.
  struct HostIds;
  std::shared_ptr<HostIds> host_ids;
  char* at(std::size_t offset) { return static_cast<char*>(data.data()) + offset; }
  const char* at(std::size_t offset) const { return static_cast<const char*>(data.data()) + offset; }
};

class CudaStageModel final : public StageModel {
 public:
  CudaStageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch,
                 std::uint64_t seed, ComputeDevice& device);
  ~CudaStageModel() override;

  std::unique_ptr<Stash> make_stash(int batch, Recompute recompute) override;
  std::size_t activation_words(int batch) const override;
  std::unique_ptr<WordBuffer> make_message_buffer(std::size_t words) override;
  void forward(Stash& stash, const int* tokens, const float* input, const int* targets,
               float dloss_scale, bool need_grad) override;
  double take_loss_sum() override;
  const float* output(const Stash& stash) const override;
  void copy_logits_row(const Stash& stash, int row, std::vector<float>& out) const override;
  void copy_input_grad(float* dst, int batch) const override;
  float* grads() override { return grads_.as<float>(); }
  std::size_t grad_words() const override { return device_words_; }
  float* grad(const std::string& name) override;
  void zero_grads() override;
  double grad_sum_of_squares(bool without_tied_wte) override;
  void sum_tied_wte_grads(StageModel& other) override;
  void optimizer_step(const TrainingConfig& training, float lr, int t, float grad_scale) override;
  void read_params(float* dst) const override;
  void read_grads(float* dst) const override { copy_device_to_table(dst, grads_.as<float>()); }
  void write_params(const float* src) override;
  void read_moments(float* m, float* v) const override;
  void write_moments(const float* m, const float* v) override;

 protected:
  void run_backward(Stash& stash, const float* dout, bool split, const LayerGradsDone& done) override;
  void run_weight_grads(Stash& stash, const LayerGradsDone& done) override;
  std::size_t grad_word_offset(std::size_t entry) const override;

 private:
  struct Block;
  using BlockActs = BlockActivations<char*>;  // model/stash_layout.h
  // unfused_gelu: GELU by its own kernel, not cuBLASLt's epilogue, so that Selective's
  // remade output is bitwise the one the forward used.
  void forward_block(int B, int layer, const void* x, const BlockActs& a, bool unfused_gelu);
  // As CpuStageModel's.
  BlockActs stash_activations(CudaStash& stash, int layer);
  BlockActs block_activations(CudaStash& stash, int layer, bool for_weight_grads);
  const void* block_output(const CudaStash& stash, int layer) const;
  using LayerGradients = pptrain::LayerGradients<char>;  // storage dtype, model/layer_gradients.h
  LayerGradients layer_gradients(CudaStash& stash, int layer, bool split);
  void head_input_grad(CudaStash& stash, int layer, const LayerGradients& g, void* dinp);
  void head_weight_grads(CudaStash& stash, int layer, const LayerGradients& g);
  void embedding_weight_grads(CudaStash& stash, const LayerGradients& g);
  void block_input_grad(int B, int layer, const void* x, const BlockActs& a, const LayerGradients& g,
                        void* dinp);
  void block_weight_grads(int B, int layer, const void* x, const BlockActs& a, const LayerGradients& g);
  const void* weight(int layer, int index) const;  // in storage dtype
  float* grad_of(int layer, int index);            // fp32
  const void* layer_input(const CudaStash& stash, int layer) const;
  void copy_table_to_device(float* device, const float* host);
  void copy_device_to_table(float* host, const float* device) const;
  std::size_t element_bytes() const;

  ComputeDevice& device_;
  std::uint64_t seed_;
  std::vector<std::size_t> device_offset_;            // per table entry, in floats
  std::vector<std::vector<std::size_t>> layer_entry_;  // per layer: table entry indices
  std::size_t device_words_ = 0;
  kernels::cuda::DeviceBuffer master_, working_, grads_, adam_m_, adam_v_;
  void upload_ids(CudaStash& stash, const int* tokens, const int* targets);
  kernels::cuda::DeviceBuffer scratch_, grad_a_, grad_b_, encoder_scratch_;
  // One block's activations at max_batch, for stashes that keep only block outputs
  // (Recompute::Full), and its pointwise pieces (CudaPointwiseLayout), for Selective ones:
  // each allocated with the first stash that needs it.
  kernels::cuda::DeviceBuffer recomputed_, pointwise_;
  // Last stage: the logits (max_batch*T, Vp) of its latest forward, dlogits after one with
  // gradient (as in CpuStageModel).
  kernels::cuda::DeviceBuffer logits_;
  const Stash* logits_owner_ = nullptr;
  // Kept-gradient sets no stash holds (as in CpuStageModel): one per micro-batch between its
  // I and its W at once, not one per stash.
  std::vector<std::vector<kernels::cuda::DeviceBuffer>> kept_pool_;
  kernels::cuda::DeviceBuffer reduce_scratch_, sums_;  // sums_: [loss sum, sq, sq of wte] doubles
  void* input_grad_ = nullptr;
  kernels::cuda::AttentionTiling attention_tiling_;  // the fastest on this GPU (ComputeDevice)
};

}  // namespace pptrain
