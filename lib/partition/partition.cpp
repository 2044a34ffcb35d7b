#include "partition/partition.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "partition/cost_model.h"

namespace pptrain {
namespace {

// "<where>: " of the stage-count key the user actually gave, stages when neither.
std::string stage_count_where(const Config& config) {
  bool only_virtual = config.key_origin.count("pipeline.virtual_stages") &&
                      !config.key_origin.count("pipeline.stages");
  return config.where(only_virtual ? "pipeline.virtual_stages" : "pipeline.stages");
}

std::vector<StageRange> ranges_from_sizes(const std::vector<int>& sizes) {
  std::vector<StageRange> ranges;
  int first = 0;
  for (int n : sizes) {
    ranges.push_back({first, first + n});
    first += n;
  }
  return ranges;
}

std::vector<StageRange> manual_partition(const Config& config, const GPT2Shape& shape,
                                         int stages) {
  const std::vector<int>& sizes = config.pipeline.manual_layers;
  const std::string where = config.where("pipeline.manual_layers");
  const char* what = config.pipeline.virtual_stages == 1 ? "stage" : "model chunk";
  PPT_CHECK(static_cast<int>(sizes.size()) == stages,
            "{}: partition manual needs one entry per {} ({}), got {} entries", where, what,
            stages, sizes.size());
  long long sum = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    PPT_CHECK(sizes[i] >= 1, "{}: entry {} is {}; every {} needs at least one layer", where, i,
              sizes[i], what);
    sum += sizes[i];
  }
  PPT_CHECK(sum == shape.num_layers(),
            "{}: entries sum to {}, but the model has model.n_layer + 2 = {} layers (the "
            "embedding and the LM head count as layers)",
            where, sum, shape.num_layers());
  return ranges_from_sizes(sizes);
}

}  // namespace

std::vector<StageRange> uniform_partition(const GPT2Shape& shape, int stages) {
  const int L = shape.n_layer;
  PPT_CHECK(stages >= 1 && stages <= shape.num_layers(),
            "uniform partition: {} stages for {} layers (embedding, {} blocks, head)", stages,
            shape.num_layers(), L);
  std::vector<int> sizes(stages, 0);
  if (L >= stages) {
    for (int s = 0; s < stages; ++s) sizes[s] = L / stages + (s < L % stages ? 1 : 0);
  } else {
    // Fewer blocks than stages: one block each on the first L stages; the head, and at
    // S = L + 2 the embedding too, get stages of their own.
    for (int s = 0; s < L; ++s) sizes[s + (stages == L + 2 ? 1 : 0)] = 1;
  }
  sizes.front() += 1;  // embedding
  sizes.back() += 1;   // head
  return ranges_from_sizes(sizes);
}

std::vector<StageRange> min_max_partition(const std::vector<double>& layer_costs, int stages,
                                          const RangeAllowed& allowed) {
  const int L = static_cast<int>(layer_costs.size());
  PPT_CHECK(stages >= 1 && stages <= L,
            "min_max_partition: cannot split {} layers into {} non-empty stages", L, stages);
  std::vector<double> prefix(L + 1, 0.0);
  for (int i = 0; i < L; ++i) {
    PPT_CHECK(std::isfinite(layer_costs[i]) && layer_costs[i] >= 0.0,
              "min_max_partition: layer {} has cost {}; costs must be finite and >= 0", i,
              layer_costs[i]);
    prefix[i + 1] = prefix[i] + layer_costs[i];
  }
  // Every comparison below uses this one expression, so ties compare exactly. A range the
  // stage may not take costs infinity, so no finite bottleneck contains it.
  const double inf = std::numeric_limits<double>::infinity();
  auto segment = [&](int stage, int i, int j) {
    if (allowed && !allowed(stage, StageRange{i, j})) return inf;
    return prefix[j] - prefix[i];
  };

  // best[k][j]: smallest bottleneck splitting layers [0, j) into k non-empty stages.
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(L + 1, inf));
  best[0][0] = 0.0;
  for (int k = 1; k <= stages; ++k) {
    // Leave at least one layer for each of the stages - k stages still to come.
    for (int j = k; j <= L - (stages - k); ++j) {
      for (int i = k - 1; i < j; ++i) {
        best[k][j] = std::min(best[k][j], std::max(best[k - 1][i], segment(k - 1, i, j)));
      }
    }
  }
  const double bottleneck = best[stages][L];
  if (bottleneck == inf) return {};  // every split puts some stage on a range it may not take

  // Walk back from the last stage, each taking the longest range that keeps the bottleneck
  // and leaves a prefix the earlier stages can still hold within it.
  std::vector<StageRange> ranges(stages);
  int end = L;
  for (int k = stages; k >= 1; --k) {
    int first = k - 1;
    while (!(best[k - 1][first] <= bottleneck && segment(k - 1, first, end) <= bottleneck)) ++first;
    ranges[k - 1] = {first, end};
    end = first;
  }
  return ranges;
}

std::vector<StageRange> partition_layers(const Config& config, const GPT2Shape& shape,
                                         const RangeAllowed& allowed) {
  const PipelineConfig& p = config.pipeline;
  PPT_CHECK(p.stages >= 1 && p.virtual_stages >= 1,
            "{}: pipeline.stages ({}) and pipeline.virtual_stages ({}) must be >= 1",
            stage_count_where(config), p.stages, p.virtual_stages);
  const long long chunks = static_cast<long long>(p.stages) * p.virtual_stages;
  if (chunks > shape.num_layers()) {
    std::string count = p.virtual_stages == 1
        ? fmt::format("pipeline.stages ({})", p.stages)
        : fmt::format("pipeline.stages x pipeline.virtual_stages ({} x {} = {})", p.stages,
                      p.virtual_stages, chunks);
    PPT_THROW("{}: {} is more stages than the model has layers ({}: the embedding, "
              "model.n_layer = {} blocks and the head); every stage needs at least one layer",
              stage_count_where(config), count, shape.num_layers(), shape.n_layer);
  }
  const int S = static_cast<int>(chunks);
  if (p.partition == "uniform") return uniform_partition(shape, S);
  if (p.partition == "manual") return manual_partition(config, shape, S);
  return min_max_partition(partition_costs(config, shape), S, allowed);
}

std::vector<double> partition_costs(const Config& config, const GPT2Shape& shape) {
  const PipelineConfig& p = config.pipeline;
  if (p.partition == "uniform" || p.partition == "manual") return {};
  if (p.partition == "parameters") return layer_costs(shape, p.partition);
  if (p.partition == "flops") {
    std::vector<double> costs(shape.num_layers());
    for (int layer = 0; layer < shape.num_layers(); ++layer) {
      costs[layer] = layer_flops(shape, layer, p.micro_batch_size, shape.max_seq_len);
    }
    return costs;
  }
  if (p.partition == "profile") {
    // Measured by the caller (runtime/layer_profile.h) before any plan is made.
    PPT_CHECK(static_cast<int>(p.layer_costs.size()) == shape.num_layers(),
              "{}: partition profile needs pipeline.layer_costs, one per layer ({}), measured at "
              "start-up; got {}", config.where("pipeline.partition"), shape.num_layers(),
              p.layer_costs.size());
    return p.layer_costs;
  }
  PPT_THROW("{}: unknown partition method '{}'; expected one of uniform, parameters, flops, profile, manual",
            config.where("pipeline.partition"), p.partition);
}

std::vector<double> stage_costs(const std::vector<StageRange>& ranges,
                                const std::vector<double>& layer_costs) {
  std::vector<double> costs;
  for (const StageRange& r : ranges) {
    PPT_CHECK(r.first_layer >= 0 && r.first_layer <= r.end_layer &&
                  r.end_layer <= static_cast<int>(layer_costs.size()),
              "stage_costs: range [{}, {}) outside the {} layer costs", r.first_layer,
              r.end_layer, layer_costs.size());
    costs.push_back(std::accumulate(layer_costs.begin() + r.first_layer,
                                    layer_costs.begin() + r.end_layer, 0.0));
  }
  return costs;
}

std::string describe_layers(const StageRange& range, const GPT2Shape& shape) {
  std::vector<std::string> parts;
  if (range.first_layer == 0) parts.push_back("embedding");
  // Blocks are model layers 1..n_layer; block b is layer b + 1.
  int first_block = std::max(range.first_layer, 1) - 1;
  int last_block = std::min(range.end_layer - 1, shape.n_layer) - 1;
  if (first_block == last_block) {
    parts.push_back(fmt::format("block {}", first_block));
  } else if (first_block < last_block) {
    parts.push_back(fmt::format("blocks {}-{}", first_block, last_block));
  }
  if (range.end_layer == shape.num_layers()) parts.push_back("head");
  return parts.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(parts, " + "));
}

std::string format_partition(const std::vector<StageRange>& ranges, const GPT2Shape& shape,
                             int pipeline_stages, const std::vector<double>& layer_costs,
                             const std::string& cost_label, schedule::StagePlacement placement) {
  const int ranks = pipeline_stages > 0 ? pipeline_stages : static_cast<int>(ranges.size());
  std::vector<double> params(shape.num_layers());
  for (int layer = 0; layer < shape.num_layers(); ++layer) {
    params[layer] = static_cast<double>(layer_parameters(shape, layer));
  }
  PPT_CHECK(layer_costs.empty() || static_cast<int>(layer_costs.size()) == shape.num_layers(),
            "format_partition: {} layer costs for {} layers", layer_costs.size(),
            shape.num_layers());
  const std::vector<double> stage_params = stage_costs(ranges, params);
  const std::vector<double> cost = stage_costs(ranges, layer_costs.empty() ? params : layer_costs);
  const double total = std::accumulate(cost.begin(), cost.end(), 0.0);

  std::vector<std::string> names;
  std::size_t width = std::string("layers").size();
  for (const StageRange& r : ranges) {
    names.push_back(describe_layers(r, shape));
    width = std::max(width, names.back().size());
  }
  std::string out = fmt::format("{:>5}  {:>4}  {:<{}}  {:>10}  {:>10}\n", "stage", "rank",
                                "layers", width, "params (M)", cost_label);
  for (std::size_t s = 0; s < ranges.size(); ++s) {
    double share = total > 0.0 ? 100.0 * cost[s] / total : 0.0;
    const int rank = schedule::rank_of_stage(placement, static_cast<int>(s), ranks);
    out += fmt::format("{:>5}  {:>4}  {:<{}}  {:>10.2f}  {:>9.1f}%\n", s, rank, names[s], width,
                       stage_params[s] / 1e6, share);
  }
  return out;
}

}  // namespace pptrain
