// The stage partitioner: uniform splits, the exact min-max split checked against brute
// force over every contiguous split, manual lists, and errors that name the config key.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "partition/cost_model.h"
#include "partition/partition.h"

using namespace pptrain;
using Catch::Matchers::Contains;

namespace {

// GPT2Shape{V, Vp, maxT, L, NH, C}
GPT2Shape shape_with(int n_layer) { return GPT2Shape{50, 64, 16, n_layer, 2, 8}; }
GPT2Shape gpt2_124m() { return GPT2Shape{50257, 50304, 1024, 12, 12, 768}; }

Config config_with(int stages, std::string partition, int virtual_stages = 1) {
  Config c;
  c.pipeline.stages = stages;
  c.pipeline.virtual_stages = virtual_stages;
  c.pipeline.partition = std::move(partition);
  return c;
}

std::vector<int> sizes_of(const std::vector<StageRange>& ranges) {
  std::vector<int> sizes;
  for (const StageRange& r : ranges) sizes.push_back(r.num_layers());
  return sizes;
}

// Contiguous, in order, non-empty, covering [0, num_layers).
void require_valid(const std::vector<StageRange>& ranges, int num_layers, int stages) {
  REQUIRE(static_cast<int>(ranges.size()) == stages);
  int next = 0;
  for (const StageRange& r : ranges) {
    REQUIRE(r.first_layer == next);
    REQUIRE(r.end_layer > r.first_layer);
    next = r.end_layer;
  }
  REQUIRE(next == num_layers);
}

// Every split of L layers into S non-empty contiguous stages, as stage sizes.
void for_each_split(int L, int S, const std::function<void(const std::vector<int>&)>& visit) {
  std::vector<int> sizes;
  std::function<void(int, int)> rec = [&](int left, int stages_left) {
    if (stages_left == 1) {
      sizes.push_back(left);
      visit(sizes);
      sizes.pop_back();
      return;
    }
    for (int n = 1; n <= left - (stages_left - 1); ++n) {
      sizes.push_back(n);
      rec(left - n, stages_left - 1);
      sizes.pop_back();
    }
  };
  rec(L, S);
}

double bottleneck(const std::vector<double>& costs, const std::vector<int>& sizes) {
  double worst = 0.0;
  int first = 0;
  for (int n : sizes) {
    worst = std::max(worst, std::accumulate(costs.begin() + first, costs.begin() + first + n, 0.0));
    first += n;
  }
  return worst;
}

}  // namespace

TEST_CASE("uniform splits the blocks evenly, extra blocks to the earlier stages", "[partition]") {
  struct Case {
    int n_layer, stages;
    std::vector<int> sizes;  // layers per stage, embedding and head included
  };
  const std::vector<Case> cases = {
      {12, 1, {14}},
      {12, 4, {4, 3, 3, 4}},
      {12, 5, {4, 3, 2, 2, 3}},     // 3 3 2 2 2 blocks
      {12, 12, {2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}},
      {7, 3, {4, 2, 3}},            // 3 2 2 blocks
      {5, 4, {3, 1, 1, 2}},         // 2 1 1 1 blocks
      {3, 3, {2, 1, 2}},
      {3, 4, {2, 1, 1, 1}},         // fewer blocks than stages: the head stands alone
      {3, 5, {1, 1, 1, 1, 1}},      // every layer its own stage
      {1, 1, {3}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.n_layer, c.stages);
    GPT2Shape shape = shape_with(c.n_layer);
    std::vector<StageRange> ranges = partition_layers(config_with(c.stages, "uniform"), shape);
    require_valid(ranges, shape.num_layers(), c.stages);
    CHECK(sizes_of(ranges) == c.sizes);
  }
}

TEST_CASE("uniform never isolates the embedding or head when there are enough blocks",
          "[partition]") {
  for (int n_layer = 1; n_layer <= 24; ++n_layer) {
    for (int stages = 1; stages <= n_layer; ++stages) {
      CAPTURE(n_layer, stages);
      GPT2Shape shape = shape_with(n_layer);
      std::vector<StageRange> ranges = uniform_partition(shape, stages);
      require_valid(ranges, shape.num_layers(), stages);
      std::vector<int> blocks = sizes_of(ranges);
      blocks.front() -= 1;
      blocks.back() -= 1;
      auto [lo, hi] = std::minmax_element(blocks.begin(), blocks.end());
      CHECK(*lo >= 1);
      CHECK(*hi - *lo <= 1);
      CHECK(std::is_sorted(blocks.begin(), blocks.end(), std::greater<int>()));
    }
  }
}

TEST_CASE("min_max_partition is optimal against brute force, ties to the later stages",
          "[partition]") {
  Rng rng(stream_key(7, "test_partition"));
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int L = 1 + static_cast<int>(rng.below(10));
    const int S = 1 + static_cast<int>(rng.below(L));
    // Small integers (zeros included) make ties common and every sum exact in double.
    std::vector<double> costs(L);
    const int range = trial % 2 == 0 ? 4 : 100;
    for (double& c : costs) c = static_cast<double>(rng.below(range));
    CAPTURE(L, S, costs);

    double best = INFINITY;
    std::vector<int> expected;  // among the optimal splits, sizes reversed lexicographically largest
    for_each_split(L, S, [&](const std::vector<int>& sizes) {
      double b = bottleneck(costs, sizes);
      std::vector<int> rev(sizes.rbegin(), sizes.rend());
      std::vector<int> rev_expected(expected.rbegin(), expected.rend());
      if (b < best || (b == best && rev > rev_expected)) {
        best = b;
        expected = sizes;
      }
    });
    std::vector<StageRange> ranges = min_max_partition(costs, S);
    require_valid(ranges, L, S);
    CHECK(bottleneck(costs, sizes_of(ranges)) == best);
    CHECK(sizes_of(ranges) == expected);
    std::vector<double> per_stage = stage_costs(ranges, costs);
    CHECK(*std::max_element(per_stage.begin(), per_stage.end()) == best);
    ++checked;
  }
  CHECK(checked == 400);
}

TEST_CASE("min_max_partition is optimal for real-valued costs", "[partition]") {
  Rng rng(stream_key(11, "test_partition_real"));
  for (int trial = 0; trial < 200; ++trial) {
    const int L = 1 + static_cast<int>(rng.below(10));
    const int S = 1 + static_cast<int>(rng.below(L));
    std::vector<double> costs(L);
    for (double& c : costs) c = rng.uniform() * 1e7;
    CAPTURE(L, S, costs);
    double best = INFINITY;
    for_each_split(L, S, [&](const std::vector<int>& sizes) {
      best = std::min(best, bottleneck(costs, sizes));
    });
    std::vector<StageRange> ranges = min_max_partition(costs, S);
    require_valid(ranges, L, S);
    CHECK(bottleneck(costs, sizes_of(ranges)) == Approx(best).epsilon(1e-12));
  }
}

TEST_CASE("min_max_partition rejects impossible requests and bad costs", "[partition]") {
  CHECK_THROWS_WITH(min_max_partition({1, 2, 3}, 4), Contains("cannot split 3 layers into 4"));
  CHECK_THROWS_WITH(min_max_partition({1, 2, 3}, 0), Contains("into 0 non-empty stages"));
  CHECK_THROWS_WITH(min_max_partition({1, -2, 3}, 2), Contains("layer 1 has cost -2"));
  CHECK_THROWS_WITH(min_max_partition({1, NAN, 3}, 2), Contains("must be finite"));
}

TEST_CASE("parameter costs count the tied wte on both the embedding and the head",
          "[partition]") {
  GPT2Shape s = gpt2_124m();
  std::vector<double> costs = layer_costs(s, "parameters");
  REQUIRE(static_cast<int>(costs.size()) == 14);
  const double C = 768, Vp = 50304;
  CHECK(costs[0] == Vp * C + 1024 * C);
  CHECK(costs[1] == 12 * C * C + 13 * C);  // 7,087,872
  CHECK(costs[13] == Vp * C + 2 * C);
  // Unique parameters: everything except the head's copy of wte (124,475,904 at Vp 50304).
  double total = std::accumulate(costs.begin(), costs.end(), 0.0);
  CHECK(total - Vp * C == static_cast<double>(s.num_parameters()));
  CHECK(s.num_parameters() == 124475904u);
  CHECK_THROWS_WITH(layer_costs(s, "profile"), Contains("not implemented yet"));
  CHECK_THROWS_WITH(layer_costs(s, "size"), Contains("partition method 'size'"));
}

TEST_CASE("layer_flops: 6 x matmul weights x tokens plus attention's T^2 term", "[partition]") {
  GPT2Shape s = gpt2_124m();
  const int B = 4, T = 1024;
  const double C = 768, Vp = 50304, tokens = B * T;
  CHECK(layer_flops(s, 0, B, T) == 0.0);
  CHECK(layer_flops(s, 1, B, T) == 6 * 12 * C * C * tokens + 12 * tokens * T * C);
  CHECK(layer_flops(s, 13, B, T) == 6 * Vp * C * tokens);
  // Summed over the model: PaLM's 6 N + 12 L C T per token, N = the matmul weights.
  double total = 0.0;
  for (int layer = 0; layer < s.num_layers(); ++layer) total += layer_flops(s, layer, B, T);
  const double matmul_weights = 12 * 12 * C * C + Vp * C;
  CHECK(total / tokens == Approx(6 * matmul_weights + 12 * 12 * C * T).epsilon(1e-15));
}

TEST_CASE("parameters on GPT-2 124M: the embedding stage takes fewer blocks than uniform",
          "[partition]") {
  GPT2Shape s = gpt2_124m();
  std::vector<StageRange> uniform = partition_layers(config_with(4, "uniform"), s);
  std::vector<StageRange> params = partition_layers(config_with(4, "parameters"), s);
  require_valid(params, s.num_layers(), 4);
  CHECK(params.front().num_layers() - 1 < uniform.front().num_layers() - 1);
  // wte (38.6M) outweighs five blocks (7.1M each): embedding and head stand alone, the 12
  // blocks split 6 / 6.
  CHECK(params == std::vector<StageRange>{{0, 1}, {1, 7}, {7, 13}, {13, 14}});
  std::vector<double> costs = layer_costs(s, "parameters");
  std::vector<double> pu = stage_costs(uniform, costs), pp = stage_costs(params, costs);
  CHECK(*std::max_element(pp.begin(), pp.end()) < *std::max_element(pu.begin(), pu.end()));
}

TEST_CASE("flops on GPT-2 124M: the head's stage takes fewer blocks, the embedding's more",
          "[partition]") {
  GPT2Shape s = gpt2_124m();
  Config c = config_with(4, "flops");
  c.pipeline.micro_batch_size = 16;
  const std::vector<StageRange> flops = partition_layers(c, s);
  require_valid(flops, s.num_layers(), 4);
  // At T = 1024 a block is 6 x 12 C^2 + 12 T C = 52.1 MFLOP per token and the head
  // 6 Vp C = 231.8 (4.45 blocks); the embedding none. No stage can be lighter than the head
  // alone, so it stands alone and the 12 blocks split 4 / 4 / 4 (uniform: 3 blocks + head).
  CHECK(flops == std::vector<StageRange>{{0, 5}, {5, 9}, {9, 13}, {13, 14}});
  std::vector<double> costs(s.num_layers());
  for (int layer = 0; layer < s.num_layers(); ++layer) costs[layer] = layer_flops(s, layer, 16, s.max_seq_len);
  const std::vector<double> pf = stage_costs(flops, costs);
  const std::vector<double> pu = stage_costs(partition_layers(config_with(4, "uniform"), s), costs);
  CHECK(*std::max_element(pf.begin(), pf.end()) < 0.7 * *std::max_element(pu.begin(), pu.end()));
}

TEST_CASE("profile partitions the measured layer costs; without them it names the key", "[partition]") {
  const GPT2Shape s = gpt2_124m();
  Config c = config_with(4, "profile");
  // Blocks of 1 ms, an embedding of 0.1 and a head of 4 (an LM head at vocab 50k outweighs
  // several blocks): the head stands alone, the blocks split 4 / 4 / 4 (bottleneck 4.1).
  c.pipeline.layer_costs.assign(s.num_layers(), 1.0);
  c.pipeline.layer_costs.front() = 0.1;
  c.pipeline.layer_costs.back() = 4.0;
  CHECK(partition_layers(c, s) == std::vector<StageRange>{{0, 5}, {5, 9}, {9, 13}, {13, 14}});
  c.pipeline.layer_costs.clear();
  CHECK_THROWS_WITH(partition_layers(c, s), Catch::Contains("partition profile needs pipeline.layer_costs"));
}

TEST_CASE("interleaved stages: S = stages x virtual_stages chunks", "[partition]") {
  GPT2Shape s = shape_with(8);
  std::vector<StageRange> ranges = partition_layers(config_with(2, "uniform", 2), s);
  CHECK(sizes_of(ranges) == std::vector<int>{3, 2, 2, 3});
  std::string table = format_partition(ranges, s, 2);
  CHECK_THAT(table, Contains("    2     0  blocks 4-5"));
  CHECK_THAT(table, Contains("    3     1  blocks 6-7 + head"));
}

TEST_CASE("manual takes layers per stage, embedding and head counted", "[partition]") {
  GPT2Shape s = shape_with(6);
  Config c = config_with(3, "manual");
  c.pipeline.manual_layers = {1, 5, 2};
  CHECK(partition_layers(c, s) == std::vector<StageRange>{{0, 1}, {1, 6}, {6, 8}});

  c.source_path = "cfg.yaml";
  c.key_origin["pipeline.manual_layers"] = "cfg.yaml:9:18";
  c.pipeline.manual_layers = {2, 6};
  CHECK_THROWS_WITH(partition_layers(c, s),
                    Contains("cfg.yaml:9:18: pipeline.manual_layers: partition manual needs one "
                             "entry per stage (3), got 2 entries"));
  c.pipeline.manual_layers = {2, 0, 6};
  CHECK_THROWS_WITH(partition_layers(c, s),
                    Contains("cfg.yaml:9:18: pipeline.manual_layers: entry 1 is 0"));
  c.pipeline.manual_layers = {2, 3, 2};
  CHECK_THROWS_WITH(partition_layers(c, s),
                    Contains("cfg.yaml:9:18: pipeline.manual_layers: entries sum to 7, but the "
                             "model has model.n_layer + 2 = 8 layers"));
  Config v = config_with(2, "manual", 2);
  v.pipeline.manual_layers = {2, 2, 2};
  CHECK_THROWS_WITH(partition_layers(v, s), Contains("one entry per model chunk (4)"));
}

TEST_CASE("partition errors name the config key and the numbers", "[partition]") {
  GPT2Shape s = shape_with(2);  // 4 layers
  Config c = config_with(5, "uniform");
  c.source_path = "cfg.yaml";
  c.key_origin["pipeline.stages"] = "cfg.yaml:3:11";
  CHECK_THROWS_WITH(partition_layers(c, s),
                    Contains("cfg.yaml:3:11: pipeline.stages: pipeline.stages (5) is more stages "
                             "than the model has layers (4: the embedding, model.n_layer = 2 "
                             "blocks and the head)"));
  Config v = config_with(3, "parameters", 2);
  v.key_origin["pipeline.virtual_stages"] = "--set pipeline.virtual_stages=2";
  CHECK_THROWS_WITH(partition_layers(v, s),
                    Contains("--set pipeline.virtual_stages=2: pipeline.virtual_stages: "
                             "pipeline.stages x pipeline.virtual_stages (3 x 2 = 6) is more"));
  Config m = config_with(2, "greedy");
  m.key_origin["pipeline.partition"] = "cfg.yaml:7:14";
  CHECK_THROWS_WITH(partition_layers(m, s),
                    Contains("cfg.yaml:7:14: pipeline.partition: unknown partition method "
                             "'greedy'; expected one of uniform, parameters, flops, profile, manual"));
  CHECK_THROWS_AS(partition_layers(config_with(0, "uniform"), s), Error);
}

TEST_CASE("format_partition: one row per stage with rank, layers, parameters, cost share",
          "[partition]") {
  GPT2Shape s = gpt2_124m();
  std::string table = format_partition(partition_layers(config_with(4, "uniform"), s), s);
  CHECK_THAT(table, Contains("stage  rank  layers"));
  CHECK_THAT(table, Contains("    0     0  embedding + blocks 0-2"));
  CHECK_THAT(table, Contains("    3     3  blocks 9-11 + head"));
  CHECK(std::count(table.begin(), table.end(), '\n') == 5);
  GPT2Shape tiny = shape_with(3);
  CHECK(describe_layers({1, 2}, tiny) == "block 0");
  CHECK(describe_layers({0, 5}, tiny) == "embedding + blocks 0-2 + head");
  CHECK(describe_layers({4, 5}, tiny) == "head");
  CHECK(describe_layers({0, 1}, tiny) == "embedding");
}
