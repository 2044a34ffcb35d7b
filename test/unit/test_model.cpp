// The model as pipeline layers: a split into stages computes the same function and the
// same gradients as the whole model, parameters are initialised independently of the
// split, and the tied embedding's two copies sum to the single-stage gradient.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "model/cpu_stage_model.h"
#include "config/config_loader.h"
#include "runtime/layer_profile.h"
#include "runtime/lr_schedule.h"
#include "support/tolerance.h"

using namespace pptrain;

namespace {

// GPT2Shape{V, Vp, maxT, L, NH, C}: V odd and padded to 16, so padded logits must not matter.
GPT2Shape tiny_shape() { return GPT2Shape{11, 16, 7, 3, 2, 6}; }

std::vector<int> random_tokens(int n, int vocab, std::uint64_t key) {
  Rng rng(key);
  std::vector<int> t(n);
  for (int& x : t) x = static_cast<int>(rng.below(vocab));
  return t;
}

struct Gradients {
  float loss = 0.0f;
  std::vector<float> params, grads;  // whole-model table order, wte = sum of its copies
};

// Runs forward + backward of one micro-batch through stages split at the given layers, the
// activations and their gradients handed from stage to stage as the pipeline would.
Gradients run_split(const GPT2Shape& s, const std::vector<int>& cuts, const std::vector<int>& tokens,
                    const std::vector<int>& targets, int B) {
  MemoryTracker memory;
  std::vector<int> bounds = {0};
  bounds.insert(bounds.end(), cuts.begin(), cuts.end());
  bounds.push_back(s.num_layers());
  std::vector<std::unique_ptr<CpuStageModel>> stages;
  std::vector<std::unique_ptr<Stash>> stashes;
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    stages.push_back(std::make_unique<CpuStageModel>(s, bounds[i], bounds[i + 1], B, 42, memory));
    stashes.push_back(stages.back()->make_stash(B, Recompute::None));
  }
  Gradients out;
  const float scale = 1.0f / static_cast<float>(B * s.max_seq_len);
  const float* x = nullptr;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    stages[i]->forward(*stashes[i], tokens.data(), x, targets.data(), scale, true);
    out.loss = static_cast<float>(stages[i]->take_loss_sum());
    if (!stages[i]->has_head()) x = stages[i]->output(*stashes[i]);
  }
  const float* dx = nullptr;
  for (std::size_t i = stages.size(); i-- > 0;) {
    stages[i]->backward(*stashes[i], dx);
    if (!stages[i]->has_embedding()) dx = stages[i]->input_grad();
  }
  CpuStageModel whole(s, 0, s.num_layers(), B, 42, memory);  // only for its table's order
  out.params.assign(whole.num_params(), 0.0f);
  out.grads.assign(whole.num_params(), 0.0f);
  for (const ParamEntry& e : whole.table().entries()) {
    for (auto& stage : stages) {
      if (!stage->table().contains(e.spec.name)) continue;
      const std::size_t n = e.spec.numel();
      const float* p = stage->param(e.spec.name);
      const float* g = stage->grad(e.spec.name);
      std::copy(p, p + n, out.params.begin() + e.offset);
      for (std::size_t j = 0; j < n; ++j) out.grads[e.offset + j] += g[j];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("GPT-2 layer list follows llm.c's parameter layout", "[model]") {
  const GPT2Shape s = tiny_shape();
  CHECK(s.num_layers() == 5);
  CHECK(s.layer_name(0) == "embedding");
  CHECK(s.layer_name(2) == "block 1");
  CHECK(s.layer_name(4) == "head");
  const auto block = s.layer_params(1);
  REQUIRE(block.size() == 12);
  CHECK(block[2].name == "h.0.qkvw");
  CHECK(block[2].shape == std::vector<int>{18, 6});
  CHECK(block[10].shape == std::vector<int>{6, 24});
  // 124M check: the GPT-2 small shape has llm.c's parameter count with Vp = 50304.
  GPT2Shape gpt2{50257, 50304, 1024, 12, 12, 768};
  CHECK(gpt2.num_parameters() == 124475904);
}

TEST_CASE("Parameter init does not depend on the stage split", "[model]") {
  const GPT2Shape s = tiny_shape();
  MemoryTracker memory;
  CpuStageModel whole(s, 0, s.num_layers(), 1, 7, memory);
  CpuStageModel tail(s, 2, s.num_layers(), 1, 7, memory);
  for (const char* name : {"h.1.qkvw", "h.2.fcprojw", "lnfw", "wte"}) {
    const std::size_t n = whole.table().find(name).spec.numel();
    CHECK(test::relative_error(whole.param(name), tail.param(name), n) == 0.0);
  }
  CpuStageModel other_seed(s, 2, s.num_layers(), 1, 8, memory);
  CHECK(test::relative_error(other_seed.param("h.1.qkvw"), tail.param("h.1.qkvw"), 18 * 6) > 0.1);
}

TEST_CASE("A split into stages equals the whole model", "[model]") {
  const GPT2Shape s = tiny_shape();
  const int B = 3, N = B * s.max_seq_len;
  const std::vector<int> tokens = random_tokens(N, s.vocab_size, 1);
  const std::vector<int> targets = random_tokens(N, s.vocab_size, 2);
  const Gradients whole = run_split(s, {}, tokens, targets, B);
  CHECK(whole.loss > 0.0f);
  for (const std::vector<int>& cuts :
       {std::vector<int>{1}, std::vector<int>{2, 4}, std::vector<int>{1, 2, 3, 4}}) {
    const Gradients split = run_split(s, cuts, tokens, targets, B);
    // Same kernels on the same data in the same order: the only difference is the order of
    // the tied-embedding sum (two copies vs one accumulator), a few float ulps.
    CHECK(split.loss == Approx(whole.loss).epsilon(1e-6));
    CHECK(test::relative_error(split.params, whole.params) == 0.0);
    CHECK(test::relative_error(split.grads, whole.grads) < 1e-6);
  }
}

TEST_CASE("A backward split into I and W, or recomputing, gives bitwise the whole backward's gradients", "[model]") {
  // Two micro-batches on one stage, as 1F1B and zb-h1 order them: F0 F1 B0 B1 against
  // F0 F1 I0 I1 W0 W1 (each W after both I: the kept gradients must not share memory). With
  // Recompute::Full both micro-batches recompute into one shared buffer, in turn.
  const GPT2Shape s = tiny_shape();
  const int B = 2, N = B * s.max_seq_len, C = s.channels;
  const std::vector<int> tokens = random_tokens(N, s.vocab_size, 3);
  const std::vector<int> targets = random_tokens(N, s.vocab_size, 4);
  std::vector<float> input(static_cast<std::size_t>(N) * C), dout(input.size());
  Rng rng(5);
  for (float& x : input) x = static_cast<float>(rng.normal());
  for (float& x : dout) x = static_cast<float>(rng.normal());
  for (const auto& [first, end] : std::vector<std::pair<int, int>>{{0, 5}, {0, 2}, {1, 4}, {3, 5}, {4, 5}}) {
    INFO("layers [" << first << ", " << end << ")");
    // variant: bit 0 = split backward, bit 1 = Recompute::Full
    std::vector<float> grads[4], input_grads[4][2];
    std::size_t stash_bytes[4] = {};
    for (int variant = 0; variant < 4; ++variant) {
      INFO("split " << (variant & 1) << ", recompute full " << (variant >> 1));
      const bool split = variant & 1;
      const Recompute recompute = variant & 2 ? Recompute::Full : Recompute::None;
      MemoryTracker memory;
      CpuStageModel model(s, first, end, B, 42, memory);
      std::unique_ptr<Stash> stash[2] = {model.make_stash(B, recompute), model.make_stash(B, recompute)};
      stash_bytes[variant] = memory.current(MemCategory::Activations);
      for (int mb = 0; mb < 2; ++mb) {
        model.forward(*stash[mb], tokens.data(), input.data(), targets.data(), 0.5f, true);
      }
      // The last stage's forward already made the LM head's weight gradient; no other.
      const double after_forward = model.grad_sum_of_squares(false);
      CHECK((after_forward > 0.0) == model.has_head());
      for (int mb = 0; mb < 2; ++mb) {
        if (split) model.backward_input(*stash[mb], dout.data()); else model.backward(*stash[mb], dout.data());
        if (!model.has_embedding()) input_grads[variant][mb].assign(model.input_grad(), model.input_grad() + N * C);
      }
      if (split) {
        CHECK(model.grad_sum_of_squares(false) == after_forward);  // I leaves the parameter gradients alone
        for (int mb = 0; mb < 2; ++mb) model.backward_weight(*stash[mb]);
      }
      grads[variant].resize(model.num_params());
      model.read_grads(grads[variant].data());
      CHECK(test::relative_error(grads[variant], grads[0]) == 0.0);
      for (int mb = 0; mb < 2; ++mb) CHECK(input_grads[variant][mb] == input_grads[0][mb]);
    }
    CHECK(std::any_of(grads[0].begin(), grads[0].end(), [](float g) { return g != 0.0f; }));
    // Blocks in the stage: a Full stash keeps one (N,C) tensor of each, instead of 16 and the
    // attention probabilities.
    const int blocks = std::min(end, 4) - std::max(first, 1);
    if (blocks > 0) {
      const std::size_t NC = sizeof(float) * N * C;
      const std::size_t saved_per_stash = blocks * (16 * NC + sizeof(float) * (4 * N + B * s.n_head * s.max_seq_len * s.max_seq_len) - NC);
      CHECK(stash_bytes[0] - stash_bytes[2] == 2 * saved_per_stash);
    } else {
      CHECK(stash_bytes[2] == stash_bytes[0]);
    }
  }
}

TEST_CASE("A split backward out of order is refused", "[model]") {
  const GPT2Shape s = tiny_shape();
  const int B = 1, N = B * s.max_seq_len;
  const std::vector<int> tokens = random_tokens(N, s.vocab_size, 6);
  MemoryTracker memory;
  CpuStageModel model(s, 0, s.num_layers(), B, 42, memory);
  auto stash = model.make_stash(B, Recompute::None);
  model.forward(*stash, tokens.data(), nullptr, tokens.data(), 1.0f, true);
  CHECK_THROWS_WITH(model.backward_weight(*stash), Catch::Contains("needs the backward_input"));
  model.backward_input(*stash, nullptr);
  CHECK_THROWS_WITH(model.backward_input(*stash, nullptr), Catch::Contains("twice"));
  CHECK_THROWS_WITH(model.backward(*stash, nullptr), Catch::Contains("awaits its W"));
  model.backward_weight(*stash);
}

TEST_CASE("Training the whole model lowers the loss on a fixed batch", "[model]") {
  const GPT2Shape s = tiny_shape();
  const int B = 2, N = B * s.max_seq_len;
  const std::vector<int> tokens = random_tokens(N, s.vocab_size, 3);
  std::vector<int> targets(tokens.begin() + 1, tokens.end());
  targets.push_back(tokens.front());
  MemoryTracker memory;
  CpuStageModel model(s, 0, s.num_layers(), B, 5, memory);
  auto stash = model.make_stash(B, Recompute::None);
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 60; ++step) {
    model.zero_grads();
    model.forward(*stash, tokens.data(), nullptr, targets.data(), 1.0f / N, true);
    last = static_cast<float>(model.take_loss_sum());
    if (step == 0) first = last;
    model.backward(*stash, nullptr);
    for (std::size_t i = 0; i < model.num_params(); ++i) model.params()[i] -= 0.5f * model.grads()[i];
  }
  CHECK(first == Approx(std::log(11.0)).epsilon(0.05));  // uniform guess at init
  CHECK(last < 0.5f * first);
}

TEST_CASE("Learning-rate schedules: warmup, then cosine, linear or constant, with a stable phase before decay_steps", "[model]") {
  TrainingConfig t;
  t.steps = 11;
  t.lr = 1.0;
  t.min_lr = 0.1;
  t.warmup_steps = 2;
  CHECK(learning_rate(t, 0) == Approx(0.5));
  CHECK(learning_rate(t, 1) == Approx(1.0));
  CHECK(learning_rate(t, 2) == Approx(1.0));
  CHECK(learning_rate(t, 6) == Approx(0.55));
  CHECK(learning_rate(t, 10) == Approx(0.1));
  t.lr_schedule = "linear";
  CHECK(learning_rate(t, 1) == Approx(1.0));
  CHECK(learning_rate(t, 4) == Approx(0.775));  // 2 of the 8 decaying steps: 1 - 0.9 * 2/8
  CHECK(learning_rate(t, 10) == Approx(0.1));
  // Warmup-stable-decay: held at lr, then the last 4 steps decay (linear: 1, 0.7, 0.4, 0.1).
  t.decay_steps = 4;
  CHECK(learning_rate(t, 6) == Approx(1.0));
  CHECK(learning_rate(t, 7) == Approx(1.0));
  CHECK(learning_rate(t, 8) == Approx(0.7));
  CHECK(learning_rate(t, 10) == Approx(0.1));
  t.lr_schedule = "cosine";
  CHECK(learning_rate(t, 6) == Approx(1.0));
  CHECK(learning_rate(t, 8) == Approx(0.1 + 0.9 * 0.75));  // cos(pi/3) = 0.5: 0.5 * (1 + 0.5)
  CHECK(learning_rate(t, 10) == Approx(0.1));
  t.lr_schedule = "constant";
  t.decay_steps = 0;
  CHECK(learning_rate(t, 9) == Approx(1.0));
}

TEST_CASE("The layer profile times the embedding, a block and the head on the CPU", "[model][partition]") {
  Config c;
  c.model.n_layer = 3;
  c.model.channels = 16;
  c.model.n_head = 2;
  c.model.seq_len = 8;
  c.model.vocab_size = 32;
  c.pipeline.micro_batch_size = 2;
  c.pipeline.partition = "profile";
  CHECK(needs_layer_profile(c));
  const GPT2Shape shape = GPT2Shape::from_config(c);
  const LayerProfile profile = profile_layers(c, shape, nullptr, 2);
  CHECK(profile.embedding_ms > 0.0);
  CHECK(profile.block_ms > 0.0);
  CHECK(profile.head_ms > 0.0);
  const std::vector<double> costs = profile.layer_costs(shape);
  REQUIRE(costs.size() == 5u);
  CHECK(costs == std::vector<double>{profile.embedding_ms, profile.block_ms, profile.block_ms,
                                     profile.block_ms, profile.head_ms});
  c.pipeline.layer_costs = costs;
  CHECK_FALSE(needs_layer_profile(c));
  // The override parses back to the same doubles.
  const Config back = pptrain::parse_config_text("data:\n  train: x\npipeline:\n  partition: profile\n"
                                                 "model:\n  n_layer: 3\n", "p.yaml", {layer_costs_override(costs)});
  CHECK(back.pipeline.layer_costs == costs);
}
