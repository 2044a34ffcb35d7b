#include "runtime/layer_profile.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <memory>

#include "core/error.h"
#include "core/memory.h"
#include "metrics/throughput.h"
#include "model/stage_model.h"

namespace pptrain {

bool needs_layer_profile(const Config& config) {
  return config.pipeline.partition == "profile" && config.pipeline.layer_costs.empty();
}

std::vector<double> LayerProfile::layer_costs(const GPT2Shape& shape) const {
  std::vector<double> costs(shape.num_layers(), block_ms);
  costs.front() = embedding_ms;
  costs.back() = head_ms;
  return costs;
}

LayerProfile profile_layers(const Config& config, const GPT2Shape& shape, ComputeDevice* device,
                            int repeats) {
  PPT_CHECK(repeats >= 1, "profile_layers: repeats must be >= 1, got {}", repeats);
  const int B = config.pipeline.micro_batch_size, T = shape.max_seq_len, N = B * T;
  const Recompute recompute = recompute_of(config.pipeline.recompute);
  MemoryTracker host;
  const int head = shape.num_layers() - 1;
  // Embedding -> one block -> head, as three stages of one layer: each forward feeds the
  // next, each input gradient the backward below it, so every kernel sees real values.
  std::unique_ptr<StageModel> models[3] = {
      make_stage_model(shape, 0, 1, B, config.training.seed, host, device),
      make_stage_model(shape, 1, 2, B, config.training.seed, host, device),
      make_stage_model(shape, head, head + 1, B, config.training.seed, host, device)};
  std::unique_ptr<Stash> stashes[3];
  for (int i = 0; i < 3; ++i) stashes[i] = models[i]->make_stash(B, recompute);
  const std::size_t words = models[0]->activation_words(B);
  std::unique_ptr<WordBuffer> grads[2] = {models[2]->make_message_buffer(words),
                                          models[1]->make_message_buffer(words)};
  std::vector<int> tokens(N), targets(N);
  for (int i = 0; i < N; ++i) {
    tokens[i] = (i * 7 + 3) % shape.vocab_size;
    targets[i] = (i * 13 + 5) % shape.vocab_size;
  }
  using Clock = std::chrono::steady_clock;
  auto now_ms = [&] {
    if (device != nullptr) device->synchronize();
    return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
  };
  std::vector<double> embedding, block, head_times;
  for (int round = 0; round <= repeats; ++round) {  // round 0 warms up
    const double t0 = now_ms();
    models[0]->forward(*stashes[0], tokens.data(), nullptr, nullptr, 0.0f, true);
    const double t1 = now_ms();
    models[1]->forward(*stashes[1], nullptr, models[0]->output(*stashes[0]), nullptr, 0.0f, true);
    const double t2 = now_ms();
    models[2]->forward(*stashes[2], nullptr, models[1]->output(*stashes[1]), targets.data(),
                       1.0f / static_cast<float>(N), true);
    models[2]->backward(*stashes[2], nullptr);
    models[2]->copy_input_grad(grads[0]->data(), B);
    models[2]->take_loss_sum();
    const double t3 = now_ms();
    models[1]->backward(*stashes[1], grads[0]->data());
    models[1]->copy_input_grad(grads[1]->data(), B);
    const double t4 = now_ms();
    models[0]->backward(*stashes[0], grads[1]->data());
    const double t5 = now_ms();
    if (round == 0) continue;
    embedding.push_back((t1 - t0) + (t5 - t4));
    block.push_back((t2 - t1) + (t4 - t3));
    head_times.push_back(t3 - t2);
  }
  return {median(embedding), median(block), median(head_times)};
}

std::string layer_costs_override(const std::vector<double>& costs) {
  return fmt::format("pipeline.layer_costs=[{}]", fmt::join(costs, ", "));
}

std::string describe_layer_profile(const Config& config, const LayerProfile& profile) {
  return fmt::format("embedding {:.3f} ms, block {:.3f} ms, head {:.3f} ms (forward + backward, B={}, "
                     "recompute {}, {} {})",
                     profile.embedding_ms, profile.block_ms, profile.head_ms,
                     config.pipeline.micro_batch_size, config.pipeline.recompute, config.runtime.device,
                     config.runtime.device == "cuda" ? config.runtime.precision : "fp32");
}

}  // namespace pptrain
