#include "runtime/grad_reduction.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/memory.h"

namespace pptrain {

StageGradWords stage_grad_words(const StageModel& model) {
  StageGradWords out{model.first_layer(), {}};
  for (int layer = model.first_layer(); layer < model.end_layer(); ++layer) {
    out.layers.push_back(model.layer_grad_words(layer));
  }
  return out;
}

StageGradWords stage_grad_words(const GPT2Shape& shape, int first_layer, int end_layer) {
  // As ParamTable::add: a name seen before (the head's tied wte) is not the layer's own.
  std::set<std::string> seen;
  StageGradWords out{first_layer, {}};
  std::size_t word = 0;
  for (int layer = first_layer; layer < end_layer; ++layer) {
    StageModel::LayerGradWords w;
    w.begin = word;
    for (const ParamSpec& spec : shape.layer_params(layer)) {
      if (!seen.insert(spec.name).second) continue;
      word += spec.numel();
      w.holds_tied_wte |= spec.name == "wte";
    }
    w.end = word;
    out.layers.push_back(w);
  }
  return out;
}

std::vector<GradBucket> plan_grad_buckets(const StageGradWords& stage, std::size_t bucket_words) {
  std::vector<GradBucket> buckets;
  bool open = false;
  for (int i = static_cast<int>(stage.layers.size()) - 1; i >= 0; --i) {
    const int layer = stage.first_layer + i;
    const StageModel::LayerGradWords& w = stage.layers[i];
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
  const StageGradWords words = stage_grad_words(model);
  buckets_ = plan_grad_buckets(words, bucket_words);
  for (std::size_t i = 0; i < words.layers.size(); ++i) {
    const int layer = words.first_layer + static_cast<int>(i);
    if (words.layers[i].holds_tied_wte) rest_.push_back({layer, layer + 1, words.layers[i].begin, words.layers[i].end});
  }
}

std::string GradReducer::describe(int first_layer, int end_layer) const {
  const std::string layers = end_layer - first_layer == 1 ? fmt::format("layer {}", first_layer)
                                                          : fmt::format("layers {}-{}", first_layer, end_layer - 1);
  return fmt::format("the data-parallel gradient sum of {} among ranks {}", layers, replicas_);
}

namespace {
std::string layer_ranges(const std::vector<GradBucket>& ranges) {
  std::vector<std::string> parts;
  for (const GradBucket& r : ranges) {
    parts.push_back(r.end_layer - r.first_layer == 1 ? fmt::format("{}", r.first_layer)
                                                     : fmt::format("{}-{}", r.first_layer, r.end_layer - 1));
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

std::string describe_grad_reduction(const Config& config, const GPT2Shape& shape,
                                    const std::vector<std::pair<int, int>>& stage_layers) {
  const ParallelConfig& p = config.parallel;
  if (p.data <= 1) return "";
  const std::size_t bucket_words = grad_bucket_words(p.grad_bucket_mib);
  std::string out = fmt::format(
      "data parallel: each stage's fp32 gradients summed over {} replicas every step (each rank sends and "
      "receives about 2 x {}/{} of them), {}:\n",
      p.data, p.data - 1, p.data,
      p.overlap_grad_reduce
          ? fmt::format("in buckets of >= {} MiB started during the stage's last backward, the tied wte's layers "
                        "after the step (parallel.grad_bucket_mib, parallel.overlap_grad_reduce)",
                        p.grad_bucket_mib)
          : std::string("all after the step (parallel.overlap_grad_reduce: false)"));
  out += "  stage | layers    | gradients MiB | buckets | largest bucket MiB | after the step MiB\n";
  auto mib = [](std::size_t words) { return static_cast<double>(words) * sizeof(float) / kMiB; };
  for (std::size_t s = 0; s < stage_layers.size(); ++s) {
    const auto [first, end] = stage_layers[s];
    const StageGradWords words = stage_grad_words(shape, first, end);
    const std::size_t total = words.layers.back().end;
    std::vector<GradBucket> buckets;
    if (p.overlap_grad_reduce) buckets = plan_grad_buckets(words, bucket_words);
    std::size_t in_buckets = 0, largest = 0;
    for (const GradBucket& b : buckets) {
      in_buckets += b.words();
      largest = std::max(largest, b.words());
    }
    out += fmt::format("  {:>5} | {:<9} | {:>13.1f} | {:>7} | {:>18.1f} | {:>18.1f}\n", s,
                       fmt::format("{}-{}", first, end - 1), mib(total), buckets.size(), mib(largest),
                       mib(total - in_buckets));
  }
  return out;
}

}  // namespace pptrain
