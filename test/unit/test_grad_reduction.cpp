// Data-parallel gradient buckets (runtime/grad_reduction.h): they cover every gradient word
// once, top down, and a bucket's all-reduce starts only once the backward has made all of
// its layers' gradients: what it would send then is what the step ends with.
#include <catch2/catch.hpp>

#include <limits>
#include <map>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "model/cpu_stage_model.h"
#include "runtime/grad_reduction.h"

using namespace pptrain;

namespace {

// GPT2Shape{V, Vp, maxT, L, NH, C}: layers 0 (embedding), 1-4 (blocks), 5 (head).
GPT2Shape shape() { return GPT2Shape{11, 16, 5, 4, 2, 6}; }

// A transport for one replica whose "other replica" holds the same gradients: a sum doubles
// the data. A started sum snapshots the data, as a real one would read it then.
class DoublingTransport final : public Transport {
 public:
  struct Started {
    float* data;
    std::size_t count;
    std::vector<float> snapshot;
  };
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  Request isend(const float*, std::size_t, int, int) override { FAIL("no sends"); return 0; }
  Request irecv(float*, std::size_t, int, int) override { FAIL("no receives"); return 0; }
  GroupId split_group(int, int) override { return 0; }
  void allreduce_sum(float* data, std::size_t count, GroupId, const std::string&) override {
    for (std::size_t i = 0; i < count; ++i) data[i] *= 2.0f;
  }
  void allreduce_sum(double*, std::size_t, GroupId, const std::string&) override {}
  Request iallreduce_sum(float* data, std::size_t count, GroupId, const std::string&) override {
    started.push_back({data, count, std::vector<float>(data, data + count)});
    return static_cast<Request>(started.size() - 1);
  }
  void wait(Request r, const std::string&) override {
    const Started& s = started.at(r);
    for (std::size_t i = 0; i < s.count; ++i) s.data[i] = 2.0f * s.snapshot[i];
  }
  std::vector<Started> started;
};

std::vector<int> random_ids(int n, int vocab, std::uint64_t key) {
  Rng rng(key);
  std::vector<int> t(n);
  for (int& x : t) x = static_cast<int>(rng.below(vocab));
  return t;
}

// Two micro-batches through the stage, the second one's backward reporting its layers to the
// reducer (split: I then W); returns the gradients the backward made, before any sum.
std::vector<float> two_micro_batches(CpuStageModel& model, GradReducer& reducer, bool split) {
  const GPT2Shape s = model.shape();
  const int B = 2, N = B * s.max_seq_len;
  const std::vector<int> tokens = random_ids(N, s.vocab_size, 1), targets = random_ids(N, s.vocab_size, 2);
  std::vector<float> input(static_cast<std::size_t>(N) * s.channels), dout(input.size());
  Rng rng(3);
  for (float& x : input) x = static_cast<float>(rng.uniform() - 0.5);
  for (float& x : dout) x = static_cast<float>(rng.uniform() - 0.5);
  model.zero_grads();
  for (int mb = 0; mb < 2; ++mb) {
    auto stash = model.make_stash(B, Recompute::None);
    model.forward(*stash, tokens.data(), model.has_embedding() ? nullptr : input.data(),
                  model.has_head() ? targets.data() : nullptr, 0.1f, true);
    const float* d = model.has_head() ? nullptr : dout.data();
    StageModel::LayerGradsDone done;
    if (mb == 1) done = [&](int layer) { reducer.layer_done(layer); };
    if (split) {
      model.backward_input(*stash, d);
      model.backward_weight(*stash, done);
    } else {
      model.backward(*stash, d, done);
    }
  }
  model.take_loss_sum();
  return std::vector<float>(model.grads(), model.grads() + model.grad_words());
}

}  // namespace

TEST_CASE("Gradient buckets cover each layer's gradients once, top down, the tied wte's layers left out",
          "[grad_reduction]") {
  MemoryTracker memory;
  const StageModel::LayerGradWords one_block = CpuStageModel(shape(), 0, 6, 2, 7, memory).layer_grad_words(1);
  const std::size_t block = one_block.end - one_block.begin;
  struct Range { int first, end; };
  for (const Range r : {Range{0, 6}, Range{0, 2}, Range{1, 5}, Range{3, 6}, Range{5, 6}}) {
    CpuStageModel model(shape(), r.first, r.end, 2, 7, memory);
    for (std::size_t bucket_words : {std::size_t{0}, block / 2, block + 1, std::size_t{1} << 30}) {
      CAPTURE(r.first, r.end, bucket_words);
      const std::vector<GradBucket> buckets = plan_grad_buckets(stage_grad_words(model), bucket_words);
      std::vector<int> covered(model.grad_words(), 0);
      int expect_end = r.end;
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        const GradBucket& b = buckets[i];
        if (model.layer_grad_words(expect_end - 1).holds_tied_wte) --expect_end;  // the head without wte
        CHECK(b.end_layer == expect_end);
        CHECK(b.first_layer < b.end_layer);
        expect_end = b.first_layer;
        CHECK(b.begin_word == model.layer_grad_words(b.first_layer).begin);
        CHECK(b.end_word == model.layer_grad_words(b.end_layer - 1).end);
        if (i + 1 < buckets.size()) CHECK(b.words() >= bucket_words);
        if (bucket_words == 0) CHECK(b.end_layer - b.first_layer == 1);
        for (std::size_t w = b.begin_word; w < b.end_word; ++w) ++covered[w];
      }
      for (int layer = r.first; layer < r.end; ++layer) {
        const StageModel::LayerGradWords w = model.layer_grad_words(layer);
        CHECK(w.holds_tied_wte == (layer == 0 || (layer == 5 && r.first > 0)));
        for (std::size_t i = w.begin; i < w.end; ++i) CHECK(covered[i] == (w.holds_tied_wte ? 0 : 1));
      }
    }
  }
}

TEST_CASE("The plan's gradient layout, from the shape alone, is the CPU stage model's", "[grad_reduction]") {
  MemoryTracker memory;
  struct Range { int first, end; };
  for (const Range r : {Range{0, 6}, Range{0, 1}, Range{0, 2}, Range{1, 5}, Range{3, 6}, Range{5, 6}}) {
    CAPTURE(r.first, r.end);
    const StageGradWords planned = stage_grad_words(shape(), r.first, r.end);
    const StageGradWords actual = stage_grad_words(CpuStageModel(shape(), r.first, r.end, 2, 7, memory));
    REQUIRE(planned.first_layer == actual.first_layer);
    REQUIRE(planned.layers.size() == actual.layers.size());
    for (std::size_t i = 0; i < planned.layers.size(); ++i) {
      CHECK(planned.layers[i].begin == actual.layers[i].begin);
      CHECK(planned.layers[i].end == actual.layers[i].end);
      CHECK(planned.layers[i].holds_tied_wte == actual.layers[i].holds_tied_wte);
    }
  }
}

TEST_CASE("A bucket's sum starts once the backward has made its layers' gradients, and every word is summed once",
          "[grad_reduction]") {
  MemoryTracker memory;
  const StageModel::LayerGradWords one_block = CpuStageModel(shape(), 0, 6, 2, 7, memory).layer_grad_words(1);
  struct Range { int first, end; };
  for (const Range r : {Range{0, 6}, Range{0, 3}, Range{2, 5}, Range{3, 6}}) {
    for (const bool split : {false, true}) {
      // Overlapped with one layer or two blocks per bucket, or all after the step.
      for (const int blocks_per_bucket : {1, 2, 0}) {
        const bool overlap = blocks_per_bucket > 0;
        CAPTURE(r.first, r.end, split, blocks_per_bucket);
        CpuStageModel model(shape(), r.first, r.end, 2, 7, memory);
        DoublingTransport transport;
        const std::size_t bucket_words = (blocks_per_bucket - 1) * (one_block.end - one_block.begin + 1);
        GradReducer reducer(model, overlap, bucket_words, transport, 0, "0, 1");
        const std::vector<float> made = two_micro_batches(model, reducer, split);
        // What each bucket would have sent when it started is what the step ended with.
        REQUIRE(transport.started.size() == reducer.buckets().size());
        for (std::size_t i = 0; i < transport.started.size(); ++i) {
          const DoublingTransport::Started& st = transport.started[i];
          const std::size_t begin = static_cast<std::size_t>(st.data - model.grads());
          CHECK(begin == reducer.buckets()[i].begin_word);
          REQUIRE(st.count == reducer.buckets()[i].words());
          for (std::size_t w = 0; w < st.count; ++w) REQUIRE(st.snapshot[w] == made[begin + w]);
        }
        std::size_t layers = 0;  // those in buckets
        for (int layer = r.first; layer < r.end; ++layer) layers += model.layer_grad_words(layer).holds_tied_wte ? 0 : 1;
        if (blocks_per_bucket == 1) CHECK(transport.started.size() == layers);
        if (blocks_per_bucket == 2) CHECK(transport.started.size() == (layers + 1) / 2);
        reducer.wait_started();
        reducer.reduce_rest();
        for (std::size_t w = 0; w < made.size(); ++w) REQUIRE(model.grads()[w] == 2.0f * made[w]);
      }
    }
  }
}

TEST_CASE("A bucket that never started is an error naming its layer", "[grad_reduction]") {
  MemoryTracker memory;
  CpuStageModel model(shape(), 1, 5, 2, 7, memory);
  DoublingTransport transport;
  GradReducer reducer(model, true, 0, transport, 0, "0, 1");
  reducer.layer_done(4);
  reducer.layer_done(3);
  CHECK_THROWS_WITH(reducer.wait_started(),
                    Catch::Contains("2 of the 4 gradient buckets of layers 1-4 started this step") &&
                        Catch::Contains("did not report layer 2"));
}

TEST_CASE("parallel.grad_bucket_mib in gradient words", "[grad_reduction]") {
  CHECK(grad_bucket_words(25.0) == 25u * 1024 * 1024 / 4);
  CHECK(grad_bucket_words(0.0) == 0u);
  CHECK(grad_bucket_words(1e300) == std::numeric_limits<std::size_t>::max());  // one bucket a stage
}
