// Data-parallel gradient reduction (DESIGN.md section 5): every stage's gradients are summed
// over its replicas once per step, before the optimizer.
//
// With parallel.overlap_grad_reduce, the sum is cut into buckets of consecutive layers
// (parallel.grad_bucket_mib of fp32 gradients each, like PyTorch DDP's 25 MiB) in the order
// the backward completes them, top down. The step's last backward of the stage (its last B,
// or its last W under a split backward) starts each bucket's all-reduce as soon as the
// bucket's lowest layer is done, while the layers below it are still computed, and the
// step's flush only waits for them. On a GPU with NCCL that hides all but the last bucket's
// reduction behind the backward; over MPI on the host it only changes when the sums are made.
//
// The layers holding the tied wte (the embedding, and the head of a stage without the
// embedding) are left out of the buckets: their sum over replicas follows the
// tied-embedding sum after the flush, as without overlap. So both ways add the same numbers
// in the same order: with two replicas (a + b == b + a) the training is bitwise the same.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "comm/transport.h"
#include "model/stage_model.h"

namespace pptrain {

struct GradBucket {
  int first_layer = 0, end_layer = 0;  // the stage's layers [first_layer, end_layer)
  std::size_t begin_word = 0, end_word = 0;  // their gradients in StageModel::grads()
  std::size_t words() const { return end_word - begin_word; }
};

// Where each layer of a stage keeps its gradients: StageModel::layer_grad_words of
// first_layer, first_layer + 1, ...
struct StageGradWords {
  int first_layer = 0;
  std::vector<StageModel::LayerGradWords> layers;
};
// A stage model's own (its backend's layout, padding included).
StageGradWords stage_grad_words(const StageModel& model);
// Without a model, for `pptrain plan`: fp32 words in table order, no padding (the CPU layout;
// a GPU's differs by its 256-byte alignment of each tensor).
StageGradWords stage_grad_words(const GPT2Shape& shape, int first_layer, int end_layer);

// The buckets of a stage, in the order its backward completes them (top down): each closes
// once it holds at least bucket_words words (so 0 makes one bucket per layer), the last may
// hold fewer. Layers holding the tied wte are in none.
std::vector<GradBucket> plan_grad_buckets(const StageGradWords& stage, std::size_t bucket_words);

// For `pptrain plan` with parallel.data > 1: per stage, the gradients summed over the
// replicas each step, in how many buckets and how many after the step. Empty for one replica.
std::string describe_grad_reduction(const Config& config, const GPT2Shape& shape,
                                    const std::vector<std::pair<int, int>>& stage_layers);

// parallel.grad_bucket_mib in 4-byte gradient words.
std::size_t grad_bucket_words(double mib);

// One stage's reduction over its replica group, step after step.
class GradReducer {
 public:
  // overlap false: one all-reduce of all the stage's gradients in reduce_rest(), as before
  // buckets existed. `replicas` names the group's world ranks in messages ("2, 3").
  GradReducer(StageModel& model, bool overlap, std::size_t bucket_words, Transport& transport,
              GroupId group, const std::string& replicas);

  // For StageModel::backward / backward_weight of the step's last backward of this stage:
  // the layer's gradients are final, so the bucket it completes, if any, starts.
  void layer_done(int layer);
  // After the step's flush: waits for every bucket; throws if one never started (its layers
  // were not all reported, so its sum would be missing).
  void wait_started();
  // Then, after the tied-embedding sum: the gradients in no bucket, summed now.
  void reduce_rest();

  const std::vector<GradBucket>& buckets() const { return buckets_; }
  // "buckets of layers 5-6, 3-4, 1-2 during the last backward, layer 0 after the step"
  std::string summary() const;

 private:
  std::string describe(int first_layer, int end_layer) const;

  StageModel& model_;
  Transport& transport_;
  GroupId group_;
  std::string replicas_;
  std::vector<GradBucket> buckets_;
  std::vector<GradBucket> rest_;  // summed by reduce_rest: the tied-wte layers, or everything
  std::vector<Transport::Request> started_;  // one per bucket started this step, in order
};

}  // namespace pptrain
