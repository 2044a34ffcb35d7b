#include "runtime/grad_reduction.h"

#include <cmath>
#include <limits>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/memory.h"

namespace pptrain {

std::vector<GradBucket> plan_grad_buckets(const StageModel& model, std::size_t bucket_words) {
  std::vector<GradBucket> buckets;
  bool open = false;
  for (int layer = model.end_layer() - 1; layer >= model.first_layer(); --layer) {
    const StageModel::LayerGradWords w = model.layer_grad_words(layer);
    if (w.holds_tied_wte) {
      open = false;
      continue;
    }
    if (!open) {
      buckets.push_back({layer, layer + 1, w.begin, w.end});
      open = true;
    } else {
      GradBucket& b = buckets.back();
      // The table lays the layers out in order, so the layer below ends where the bucket begins.
      PPT_CHECK(w.end == b.begin_word, "layer {}'s gradients end at word {}, not where layer {}'s begin ({})",
                layer, w.end, layer + 1, b.begin_word);
      b.first_layer = layer;
      b.begin_word = w.begin;
    }
    if (buckets.back().words() >= bucket_words) open = false;
  }
  return buckets;
}

std::size_t grad_bucket_words(double mib) {
  const double words = mib * kMiB / sizeof(float);
  // Any bucket past 2^60 words is "one bucket for the whole stage"; llround would overflow.
  return words >= 0x1p60 ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(std::llround(words));
}

GradReducer::GradReducer(StageModel& model, bool overlap, std::size_t bucket_words, Transport& transport,
                         GroupId group, const std::string& replicas)
    : model_(model), transport_(transport), group_(group), replicas_(replicas) {
  if (!overlap) {
    rest_.push_back({model.first_layer(), model.end_layer(), 0, model.grad_words()});
    return;
  }
  buckets_ = plan_grad_buckets(model, bucket_words);
  for (int layer = model.first_layer(); layer < model.end_layer(); ++layer) {
    const StageModel::LayerGradWords w = model.layer_grad_words(layer);
    if (w.holds_tied_wte) rest_.push_back({layer, layer + 1, w.begin, w.end});
  }
}

std::string GradReducer::describe(int first_layer, int end_layer) const {
  return fmt::format("the data-parallel gradient sum of layers {}-{} among ranks {}", first_layer,
                     end_layer - 1, replicas_);
}

namespace {
std::string layer_ranges(const std::vector<GradBucket>& ranges) {
  std::vector<std::string> parts;
  for (const GradBucket& r : ranges) {
    parts.push_back(r.end_layer - r.first_layer == 1 ? fmt::format("{}", r.first_layer)
                                                     : fmt::format("{}-{}", r.end_layer - 1, r.first_layer));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}
}  // namespace

std::string GradReducer::summary() const {
  std::string out;
  if (!buckets_.empty()) {
    out = fmt::format("buckets of layers {} during the last backward", layer_ranges(buckets_));
  }
  if (!rest_.empty()) {
    out += fmt::format("{}layer{} {} after the step", out.empty() ? "" : ", ",
                       rest_.size() == 1 && rest_[0].end_layer - rest_[0].first_layer == 1 ? "" : "s",
                       layer_ranges(rest_));
  }
  return out;
}

void GradReducer::layer_done(int layer) {
  if (started_.size() == buckets_.size()) return;
  const GradBucket& b = buckets_[started_.size()];
  if (layer != b.first_layer) return;
  started_.push_back(transport_.iallreduce_sum(model_.grads() + b.begin_word, b.words(), group_,
                                               describe(b.first_layer, b.end_layer)));
}

void GradReducer::wait_started() {
  PPT_CHECK(started_.size() == buckets_.size(),
            "{} of the {} gradient buckets of layers {}-{} started this step: the last backward did not "
            "report layer {}",
            started_.size(), buckets_.size(), model_.first_layer(), model_.end_layer() - 1,
            buckets_[started_.size()].first_layer);
  for (std::size_t i = 0; i < started_.size(); ++i) {
    transport_.wait(started_[i], describe(buckets_[i].first_layer, buckets_[i].end_layer));
  }
  started_.clear();
}

void GradReducer::reduce_rest() {
  for (const GradBucket& r : rest_) {
    transport_.allreduce_sum(model_.grads() + r.begin_word, r.words(), group_,
                             describe(r.first_layer, r.end_layer));
  }
}

}  // namespace pptrain
