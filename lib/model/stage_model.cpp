#include "model/stage_model.h"

#include "core/error.h"
#include "model/cpu_stage_model.h"
#if PPTRAIN_WITH_CUDA
#include "model/cuda_stage_model.h"
#endif

namespace pptrain {

Recompute recompute_of(std::string_view name) {
  if (name == "none") return Recompute::None;
  if (name == "selective") return Recompute::Selective;
  if (name == "full") return Recompute::Full;
  PPT_THROW("pipeline.recompute: expected none, selective or full, got '{}'", name);
}

StageModel::StageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch)
    : shape_(shape), first_layer_(first_layer), end_layer_(end_layer), max_batch_(max_batch) {
  PPT_CHECK(0 <= first_layer && first_layer < end_layer && end_layer <= shape.num_layers(),
            "stage layers [{}, {}) are not a non-empty range of the model's {} layers",
            first_layer, end_layer, shape.num_layers());
  PPT_CHECK(max_batch >= 1, "micro-batch size must be >= 1, got {}", max_batch);
  for (int layer = first_layer; layer < end_layer; ++layer) {
    layer_entries_.push_back(table_.entries().size());
    for (const ParamSpec& spec : shape.layer_params(layer)) table_.add(spec);
  }
  layer_entries_.push_back(table_.entries().size());
}

StageModel::LayerGradWords StageModel::layer_grad_words(int layer) const {
  PPT_CHECK(first_layer_ <= layer && layer < end_layer_, "layer {} is not in this stage's [{}, {})", layer,
            first_layer_, end_layer_);
  const std::size_t first = layer_entries_[layer - first_layer_], end = layer_entries_[layer - first_layer_ + 1];
  const auto& entries = table_.entries();
  auto word = [&](std::size_t entry) { return entry < entries.size() ? grad_word_offset(entry) : grad_words(); };
  LayerGradWords w;
  w.begin = word(first);
  w.end = word(end);
  for (std::size_t e = first; e < end; ++e) w.holds_tied_wte |= entries[e].spec.name == "wte";
  return w;
}

void StageModel::backward(Stash& stash, const float* dout, const LayerGradsDone& done) {
  PPT_CHECK(!stash.weight_grads_pending, "backward on a micro-batch whose split backward awaits its W");
  run_backward(stash, dout, false, done);
}

void StageModel::backward_input(Stash& stash, const float* dout) {
  PPT_CHECK(!stash.weight_grads_pending, "backward_input twice before backward_weight");
  run_backward(stash, dout, true, nullptr);
  stash.weight_grads_pending = true;
}

void StageModel::backward_weight(Stash& stash, const LayerGradsDone& done) {
  PPT_CHECK(stash.weight_grads_pending, "backward_weight needs the backward_input of the same micro-batch first");
  run_weight_grads(stash, done);
  stash.weight_grads_pending = false;
}

kernels::AdamwStep adamw_step(const TrainingConfig& training, float lr, int t, float grad_scale) {
  kernels::AdamwStep step;
  step.lr = lr;
  step.beta1 = static_cast<float>(training.beta1);
  step.beta2 = static_cast<float>(training.beta2);
  step.eps = static_cast<float>(training.eps);
  step.t = t;
  step.grad_scale = grad_scale;
  return step;
}

std::unique_ptr<StageModel> make_stage_model(const GPT2Shape& shape, int first_layer,
                                             int end_layer, int max_batch, std::uint64_t seed,
                                             MemoryTracker& host_memory, ComputeDevice* device) {
  if (device == nullptr) {
    return std::make_unique<CpuStageModel>(shape, first_layer, end_layer, max_batch, seed, host_memory);
  }
#if PPTRAIN_WITH_CUDA
  return std::make_unique<CudaStageModel>(shape, first_layer, end_layer, max_batch, seed, *device);
#else
  PPT_THROW("this build has no CUDA backend: rebuild with -DPPTRAIN_CUDA=ON (needs nvcc)");
#endif
}

}  // namespace pptrain
