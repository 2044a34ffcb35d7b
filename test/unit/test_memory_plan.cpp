// The memory plan: each stage footprint equals what a real CPU stage model counts in its
// tracker, piece by piece, and the plan of a schedule counts the stashes and message buffers
// the executor keeps (the end-to-end check against measured peaks of every rank is
// it_pipeline_equivalence.sh's "as planned").
#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include "config/config_loader.h"
#include "core/rng.h"
#include "model/cpu_stage_model.h"
#include "model/stage_footprint.h"
#include "runtime/memory_plan.h"
#include "runtime/schedule_comparison.h"
#include "runtime/training_plan.h"
#include "support/temp_dir.h"

using namespace pptrain;

namespace {

std::size_t current(const MemoryTracker& m, MemCategory c) { return m.current(c); }

Config pipeline_config(int stages, const std::string& schedule, int v, int m, const std::string& recompute) {
  Config c;
  c.model.vocab_size = 64;
  c.model.seq_len = 8;
  c.model.n_layer = 4;
  c.model.n_head = 2;
  c.model.channels = 16;
  c.pipeline.stages = stages;
  c.pipeline.schedule = schedule;
  c.pipeline.virtual_stages = v;
  c.pipeline.micro_batches = m;
  c.pipeline.micro_batch_size = 2;
  c.pipeline.recompute = recompute;
  return c;
}

}  // namespace

TEST_CASE("A stage footprint is what a CPU stage model allocates, piece by piece", "[model][memory]") {
  const GPT2Shape s{11, 16, 7, 3, 2, 6};  // 5 layers: embedding, 3 blocks, head
  const int B = 2, N = B * s.max_seq_len;
  std::vector<int> tokens(N, 1), targets(N, 2);
  std::vector<float> input(static_cast<std::size_t>(N) * s.channels, 0.5f), dout(input.size(), 0.25f);
  for (const auto& [first, end] : std::vector<std::pair<int, int>>{{0, 5}, {0, 2}, {1, 4}, {3, 5}, {4, 5}, {0, 1}}) {
    INFO("layers [" << first << ", " << end << ")");
    const StageFootprint f = stage_footprint(StageBackend{}, s, first, end, B);
    MemoryTracker memory;
    CpuStageModel model(s, first, end, B, 42, memory);
    CHECK(current(memory, MemCategory::Params) == f.params);
    CHECK(current(memory, MemCategory::Grads) == f.grads);
    CHECK(current(memory, MemCategory::Optimizer) == f.optimizer);
    CHECK(current(memory, MemCategory::Workspace) == f.workspace);
    CHECK(current(memory, MemCategory::Activations) == 0);

    std::unique_ptr<Stash> stash = model.make_stash(B, Recompute::None);
    CHECK(current(memory, MemCategory::Activations) == f.stash);
    model.forward(*stash, tokens.data(), input.data(), targets.data(), 0.5f, true);
    model.backward_input(*stash, dout.data());
    CHECK(current(memory, MemCategory::Activations) == f.stash + f.kept_gradients);
    model.backward_weight(*stash);

    std::unique_ptr<Stash> full = model.make_stash(B, Recompute::Full);
    CHECK(current(memory, MemCategory::Activations) == f.stash + f.kept_gradients + f.full_stash);
    CHECK(current(memory, MemCategory::Workspace) == f.workspace + f.recompute_workspace);
    std::unique_ptr<WordBuffer> message = model.make_message_buffer(model.activation_words(B));
    CHECK(current(memory, MemCategory::Activations) == f.stash + f.kept_gradients + f.full_stash + f.message);
    // The kept set went back to the model's pool at W: the next micro-batch's I reuses it.
    std::unique_ptr<Stash> next = model.make_stash(B, Recompute::None);
    model.forward(*next, tokens.data(), input.data(), targets.data(), 0.5f, true);
    model.backward_input(*next, dout.data());
    CHECK(current(memory, MemCategory::Activations) == 2 * f.stash + f.kept_gradients + f.full_stash + f.message);
    model.backward_weight(*next);

    std::unique_ptr<Stash> selective = model.make_stash(B, Recompute::Selective);
    CHECK(current(memory, MemCategory::Activations) ==
          2 * f.stash + f.kept_gradients + f.full_stash + f.message + f.selective_stash);
    CHECK(current(memory, MemCategory::Workspace) == f.workspace + f.recompute_workspace + f.selective_workspace);
    // Selective keeps 6 fewer (N,C) units per block than None, in a workspace of one block's.
    const int blocks = std::max(0, std::min(end, s.n_layer + 1) - std::max(first, 1));
    const std::size_t unit = static_cast<std::size_t>(N) * s.channels * sizeof(float);
    CHECK(f.stash - f.selective_stash == blocks * 6 * unit);
    CHECK(f.selective_workspace == (blocks > 0 ? 6 * unit + 2 * N * sizeof(float) : 0));
  }
}

TEST_CASE("The memory plan counts the stashes and message buffers each schedule keeps", "[memory]") {
  struct Case {
    int stages;
    std::string schedule;
    int v, m;
    std::vector<int> stashes, messages;  // by pipeline rank
    std::vector<int> kept = {};          // kept-gradient sets (split backwards), by rank
  };
  // 1F1B keeps p - r micro-batches on rank r, GPipe all m. Message buffers: the gradients a
  // rank sends stay until the step's flush, one per micro-batch on every rank but the first;
  // middle ranks hold a received message besides; rank 0 two received gradients (the next
  // receive is posted while it computes with the current one).
  const std::vector<Case> cases = {
      {1, "1f1b", 1, 3, {1}, {0}},
      {2, "1f1b", 1, 4, {2, 1}, {2, 4}},
      {2, "gpipe", 1, 4, {4, 4}, {2, 4}},
      {4, "1f1b", 1, 6, {4, 3, 2, 1}, {2, 7, 7, 6}},
      // zb-h1 rank r runs r of its W late: r + 1 micro-batches between I and W at once.
      {2, "zb-h1", 1, 4, {2, 2}, {1, 4}, {1, 2}},
      {4, "zb-h1", 1, 8, {4, 4, 4, 4}, {1, 9, 9, 8}, {1, 2, 3, 4}},
      {2, "interleaved", 2, 4, {6, 4}, {6, 9}},
  };
  for (const Case& c : cases) {
    INFO(c.schedule << " on " << c.stages << " ranks, m " << c.m);
    const Config config = pipeline_config(c.stages, c.schedule, c.v, c.m, "none");
    const MemoryPlan plan = plan_memory(config, make_training_plan(config));
    REQUIRE(plan.ranks.size() == c.stashes.size());
    for (std::size_t r = 0; r < plan.ranks.size(); ++r) {
      INFO("rank " << r);
      CHECK(plan.ranks[r].stashes == c.stashes[r]);
      CHECK(plan.ranks[r].messages == c.messages[r]);
      CHECK(plan.ranks[r].kept_gradients == (c.kept.empty() ? 0 : c.kept[r]));
    }
  }
}

TEST_CASE("The memory plan: recompute full shrinks activations and adds one block's workspace", "[memory]") {
  const Config none = pipeline_config(2, "1f1b", 1, 4, "none");
  const Config full = pipeline_config(2, "1f1b", 1, 4, "full");
  const TrainingPlan tp = make_training_plan(none);
  const MemoryPlan a = plan_memory(none, tp), b = plan_memory(full, tp);
  for (std::size_t r = 0; r < a.ranks.size(); ++r) {
    const auto act = static_cast<std::size_t>(MemCategory::Activations);
    const auto ws = static_cast<std::size_t>(MemCategory::Workspace);
    CHECK(b.ranks[r].bytes[act] < a.ranks[r].bytes[act]);
    CHECK(b.ranks[r].bytes[ws] > a.ranks[r].bytes[ws]);
    CHECK(b.ranks[r].stashes == a.ranks[r].stashes);
  }
  const std::string table = describe_memory_plan(a);
  CHECK_THAT(table, Catch::Contains("memory per pipeline rank (host memory, fp32; MiB)"));
  CHECK_THAT(table, Catch::Contains("largest: rank 0"));
  CHECK(memory_plan_difference(a, 1, a.ranks[1].bytes).empty());
  CategoryBytes off = a.ranks[1].bytes;
  off[static_cast<std::size_t>(MemCategory::Workspace)] += 1024 * 1024;
  CHECK_THAT(memory_plan_difference(a, 1, off), Catch::Contains("workspace"));
}

TEST_CASE("pptrain plan --compare puts every schedule side by side", "[memory][schedule]") {
  test::TempDir dir;
  const std::string path = dir / "c.yaml";
  std::ofstream(path) << "model: {vocab_size: 64, seq_len: 8, n_layer: 6, n_head: 2, channels: 16}\n"
                         "pipeline: {stages: 3, micro_batches: 6, micro_batch_size: 2}\n"
                         "data: {train: \"unused_*.bin\"}\n";
  const std::string table = compare_schedules(path, {}, "");
  INFO(table);
  // With F = I = W = 1 (B = 2): gpipe and 1f1b (p-1)/(m+p-1) = 25%, zb-h1 a third of the
  // idle time: 2 / (18 + 2) = 10%; gpipe holds all 6 micro-batches, 1f1b p = 3.
  CHECK_THAT(table, Catch::Contains("  gpipe                | 1 |         24 |  25.00% |         6 |"));
  CHECK_THAT(table, Catch::Contains("  1f1b                 | 1 |         24 |  25.00% |         3 |"));
  CHECK_THAT(table, Catch::Contains("  zb-h1                | 1 |         20 |  10.00% |         3 |"));
  CHECK_THAT(table, Catch::Contains("  interleaved          | 2 |"));
  CHECK_THAT(table, Catch::Contains("  interleaved-zb       | 2 |"));
  // With 4 blocks, 3 ranks x 2 chunks do not fit: the row says why instead of failing the table.
  std::ofstream(path) << "model: {vocab_size: 64, seq_len: 8, n_layer: 4, n_head: 2, channels: 16}\n"
                         "pipeline: {stages: 3, micro_batches: 6, micro_batch_size: 2}\n"
                         "data: {train: \"unused_*.bin\"}\n";
  const std::string small = compare_schedules(path, {}, "");
  CHECK_THAT(small, Catch::Contains("  interleaved          | 2 | cannot run: "));
  CHECK_THAT(small, Catch::Contains("each model chunk needs at least one transformer block"));
  CHECK_THAT(small, Catch::Contains("  1f1b                 | 1 |         24 |"));
}

TEST_CASE("memory_fixes names the overrides that make a plan fit", "[memory]") {
  const Config c = pipeline_config(2, "gpipe", 1, 4, "none");
  const std::size_t now = largest_rank_bytes(plan_memory(c, make_training_plan(c)));
  Config full = c;
  full.pipeline.recompute = "full";
  const std::size_t with_full = largest_rank_bytes(plan_memory(full, make_training_plan(full)));
  REQUIRE(with_full < now);
  // A limit between the two: recompute fits, and so does something with half the batch.
  const std::string fixes = memory_fixes(c, (now + with_full) / 2);
  CHECK_THAT(fixes, Catch::StartsWith(" --set pipeline.recompute=full (largest rank "));
  CHECK_THAT(fixes, Catch::Contains("--set pipeline.micro_batch_size=1 --set pipeline.micro_batches=8"));
  CHECK(memory_fixes(c, 1).empty());  // nothing fits in one byte
}

TEST_CASE("plan costs from the FLOP model (--costs model) see the LM head's weight", "[schedule][partition]") {
  Config c;
  c.model = ModelConfig{"gpt2", 50257, 0, 1024, 12, 12, 768, ""};
  c.pipeline.stages = 4;
  c.pipeline.micro_batches = 8;
  c.pipeline.micro_batch_size = 16;
  const TrainingPlan uniform = make_training_plan(c);
  const schedule::ActionCosts costs = plan_costs(c, uniform, "model");
  REQUIRE(costs.forward_per_stage.size() == 4);
  double sum = 0.0;
  for (double f : costs.forward_per_stage) sum += f;
  CHECK(sum == Approx(4.0));  // the mean rank's F is the unit
  // The last stage: 3 blocks and the head, whose forward runs its whole matmul work.
  CHECK(costs.forward_per_stage[3] > 4.0 * costs.forward_per_stage[1]);
  CHECK(costs.backward_input_per_stage[3] == Approx(costs.backward_input_per_stage[1]));
  CHECK(costs.backward_per_stage[1] ==
        Approx(costs.backward_input_per_stage[1] + costs.backward_weight_per_stage[1]));
  c.pipeline.partition = "flops";
  const TrainingPlan balanced = make_training_plan(c);
  const double bubble_uniform = schedule::simulate(uniform.lowered, costs).bubble;
  const double bubble_flops = schedule::simulate(balanced.lowered, plan_costs(c, balanced, "model")).bubble;
  INFO("bubble: uniform " << bubble_uniform << ", flops " << bubble_flops);
  CHECK(bubble_flops < bubble_uniform - 0.15);
  CHECK_THAT(describe_training_plan(c, balanced, "model"), Catch::Contains("(FLOPs; the mean rank's F = 1)"));
}
