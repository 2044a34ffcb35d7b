#include "runtime/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "core/error.h"
#include "model/stage_footprint.h"
#include "schedule/action.h"
#include "schedule/posting_order.h"

namespace pptrain {

namespace {

using schedule::Action;
using schedule::ActionKind;

std::size_t& at(CategoryBytes& b, MemCategory c) { return b[static_cast<std::size_t>(c)]; }

// The pools of one pipeline rank, grown as PipelineExecutor::run_schedule and the stage
// models grow their own: a stage's stash pool (taken at F when none is free, returned after
// B or W), its kept-gradient sets (taken at I, returned after W), and the rank's message
// buffers (a receive's at its post, a gradient's at the B or I that makes it; the gradients
// to send return only when the step's sends are flushed). Two steps: pools warm up in the
// first.
struct PoolWalk {
  explicit PoolWalk(int rank) : list_rank(rank) {}
  int list_rank;  // the pipeline rank whose list is walked
  struct StagePool {
    int stashes = 0, free_stashes = 0;
    int kept_sets = 0, free_kept_sets = 0;
  };
  enum Role { kReceivedActivation, kOutputGrad, kGradToSend };
  using Key = std::tuple<int, int, int>;  // (role, stage, micro-batch)

  std::map<int, StagePool> stages;
  std::set<Key> in_use;
  int messages = 0;

  void acquire(Role role, int stage, int mb) {
    in_use.insert({role, stage, mb});
    messages = std::max(messages, static_cast<int>(in_use.size()));
  }
  void release(Role role, int stage, int mb) { in_use.erase({role, stage, mb}); }

  void forward(int stage, int mb) {
    take(stages[stage].stashes, stages[stage].free_stashes);
    release(kReceivedActivation, stage, mb);
  }
  static void take(int& made, int& free) {
    if (free > 0) --free; else ++made;
  }

  void run_step(const schedule::Schedule& lowered) {
    const std::vector<Action>& list = lowered.actions[list_rank];
    auto local = [&](int stage) { return stage >= 0 && lowered.rank_of_stage(stage) == list_rank; };
    auto post = [&](const Action& a) {
      if (a.kind == ActionKind::RecvF) acquire(kReceivedActivation, a.stage, a.micro_batch);
      if (a.kind == ActionKind::RecvB) acquire(kOutputGrad, a.stage, a.micro_batch);
    };
    auto compute = [&](const Action& a) {
      const int s = a.stage, mb = a.micro_batch;
      switch (a.kind) {
        case ActionKind::Forward: forward(s, mb); break;
        case ActionKind::Backward:
        case ActionKind::BackwardInput:
          if (s > 0) {
            if (local(s - 1)) acquire(kOutputGrad, s - 1, mb);
            else acquire(kGradToSend, s, mb);
          }
          release(kOutputGrad, s, mb);
          if (a.kind == ActionKind::Backward) {
            ++stages[s].free_stashes;
          } else {
            take(stages[s].kept_sets, stages[s].free_kept_sets);
          }
          break;
        case ActionKind::BackwardWeight:
          ++stages[s].free_stashes;
          ++stages[s].free_kept_sets;
          break;
        default: break;
      }
    };
    schedule::for_each_in_posting_order(list, post, compute);
    for (auto it = in_use.begin(); it != in_use.end();) {  // the flush: sends have landed
      it = std::get<0>(*it) == kGradToSend ? in_use.erase(it) : std::next(it);
    }
  }
};

// What a rank's lowered schedule keeps at once: independent of the partition, so the
// memory-limited partitioner walks each rank's list once.
struct RankPools {
  std::map<int, PoolWalk::StagePool> stages;
  int messages = 0;
};

RankPools walk_pools(const schedule::Schedule& lowered, int rank) {
  PoolWalk walk(rank);
  for (int step = 0; step < 2; ++step) walk.run_step(lowered);
  return {walk.stages, walk.messages};
}

StageBackend backend_of(const Config& config) {
  const bool gpu = config.runtime.device == "cuda";
  return {gpu, gpu && config.runtime.precision == "bf16" ? std::size_t{2} : std::size_t{4}};
}

// The plan of pipeline rank `rank` if stage s had footprint_of(s).
RankMemoryPlan rank_memory(const Config& config, const schedule::Schedule& lowered, const RankPools& pools,
                           int rank, const std::function<StageFootprint(int stage)>& footprint_of) {
  const StageBackend backend = backend_of(config);
  const Recompute recompute = recompute_of(config.pipeline.recompute);
  RankMemoryPlan r;
  r.pp_rank = rank;
  r.validation = !config.data.val.empty() && config.training.val_batches > 0;
  std::size_t message = 0;
  for (int stage = 0; stage < lowered.stages(); ++stage) {  // ascending, as the executor's
    if (lowered.rank_of_stage(stage) != rank) continue;
    r.stages.push_back(stage);
    const StageFootprint f = footprint_of(stage);
    if (message == 0) message = f.message;  // the executor sizes them by its first stage
    const auto pool = pools.stages.find(stage);
    const int stashes = pool == pools.stages.end() ? 0 : pool->second.stashes;
    const int kept = pool == pools.stages.end() ? 0 : pool->second.kept_sets;
    r.stashes += stashes;
    r.kept_gradients += kept;
    at(r.bytes, MemCategory::Params) += f.params;
    at(r.bytes, MemCategory::Grads) += f.grads;
    at(r.bytes, MemCategory::Optimizer) += f.optimizer;
    at(r.bytes, MemCategory::Workspace) += f.workspace + f.recompute_workspace_bytes(recompute);
    at(r.bytes, MemCategory::Activations) += stashes * f.stash_bytes(recompute) + kept * f.kept_gradients;
  }
  r.messages = pools.messages;
  // Validation borrows a training stash per stage (it runs between steps) and receives
  // into one message buffer of its own.
  at(r.bytes, MemCategory::Activations) += (r.messages + (r.validation ? 1 : 0)) * message;
  if (backend.cuda) at(r.bytes, MemCategory::Workspace) += compute_device_footprint();
  return r;
}

}  // namespace

std::size_t RankMemoryPlan::total() const {
  std::size_t sum = 0;
  for (std::size_t b : bytes) sum += b;
  return sum;
}

MemoryPlan plan_memory(const Config& config, const TrainingPlan& plan) {
  MemoryPlan out;
  const StageBackend backend = backend_of(config);
  out.gpu = backend.cuda;
  out.storage = backend.element_bytes == 2 ? "bf16" : "fp32";
  for (int rank = 0; rank < config.pipeline.stages; ++rank) {
    out.ranks.push_back(rank_memory(config, plan.lowered, walk_pools(plan.lowered, rank), rank, [&](int stage) {
      const StageRange& r = plan.partition.at(stage);
      return stage_footprint(backend, plan.shape, r.first_layer, r.end_layer, config.pipeline.micro_batch_size);
    }));
  }
  return out;
}

std::size_t memory_limit_bytes(const Config& config) {
  const double gib = config.pipeline.memory_limit_gib;
  if (!(gib > 0.0)) return 0;
  const double bytes = gib * kGiB;
  return bytes >= 1.8e19 ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(bytes);
}

bool memory_limit_steers_partition(const PipelineConfig& p) {
  // One stage per rank: with several, a rank's total couples stages the split's dynamic
  // programme sees apart (those plans are checked, not steered).
  return p.virtual_stages == 1 && p.partition != "uniform" && p.partition != "manual";
}

std::vector<StageRange> partition_within_memory_limit(const Config& config, const GPT2Shape& shape,
                                                      const schedule::Schedule& lowered,
                                                      std::size_t& smallest_peak) {
  const std::size_t limit = memory_limit_bytes(config);
  PPT_CHECK(limit > 0 && memory_limit_steers_partition(config.pipeline),
            "partition_within_memory_limit: {} with no limit or a split it does not steer",
            config.where("pipeline.memory_limit_gib"));
  const int S = lowered.stages(), L = shape.num_layers();
  // bytes[s][i][j]: rank s's total if stage s held layers [i, j) (0 where it cannot: every
  // stage keeps at least one layer).
  std::vector<std::vector<std::vector<std::size_t>>> bytes(
      S, std::vector<std::vector<std::size_t>>(L + 1, std::vector<std::size_t>(L + 1, 0)));
  // All blocks have one shape, so a range's footprint depends only on whether it holds the
  // embedding and the head and on its length: at most 4 L footprints to compute.
  const StageBackend backend = backend_of(config);
  std::map<std::tuple<bool, bool, int>, StageFootprint> footprints;
  auto footprint = [&](int i, int j) {
    const std::tuple<bool, bool, int> key{i == 0, j == L, j - i};
    auto it = footprints.find(key);
    if (it == footprints.end()) {
      it = footprints.emplace(key, stage_footprint(backend, shape, i, j, config.pipeline.micro_batch_size)).first;
    }
    return it->second;
  };
  std::vector<std::size_t> candidates;
  for (int s = 0; s < S; ++s) {
    const int rank = lowered.rank_of_stage(s);
    const RankPools pools = walk_pools(lowered, rank);
    for (int i = s; i <= L - (S - s); ++i) {
      for (int j = i + 1; j <= L - (S - 1 - s); ++j) {
        bytes[s][i][j] = rank_memory(config, lowered, pools, rank, [&](int) { return footprint(i, j); }).total();
        candidates.push_back(bytes[s][i][j]);
      }
    }
  }
  auto under = [&bytes](std::size_t cap) -> RangeAllowed {
    return [&bytes, cap](int stage, const StageRange& r) { return bytes[stage][r.first_layer][r.end_layer] <= cap; };
  };
  std::vector<StageRange> ranges = partition_layers(config, shape, under(limit));
  if (!ranges.empty()) return ranges;
  // None fits: the smallest largest-rank total any split reaches (fitting is monotone in the
  // cap, so a binary search over the candidate totals finds it).
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  const std::vector<double> zero(L, 0.0);
  std::size_t lo = 0, hi = candidates.size() - 1;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (min_max_partition(zero, S, under(candidates[mid])).empty()) lo = mid + 1; else hi = mid;
  }
  smallest_peak = candidates[lo];
  return ranges;
}

std::string ranks_over_memory_limit(const Config& config, const MemoryPlan& plan) {
  const std::size_t limit = memory_limit_bytes(config);
  std::string over;
  for (const RankMemoryPlan& r : plan.ranks) {
    if (limit == 0 || r.total() <= limit) continue;
    over += fmt::format("{}rank {} ({})", over.empty() ? "" : ", ", r.pp_rank, memory_size(r.total()));
  }
  return over;
}

std::string describe_memory_plan(const MemoryPlan& plan) {
  std::string out = fmt::format("memory per pipeline rank ({} memory, {}; MiB):\n",
                                plan.gpu ? "GPU" : "host", plan.storage);
  out += "  rank | stages       |     params |      grads |  optimizer | activations |  workspace |      total\n";
  for (const RankMemoryPlan& r : plan.ranks) {
    std::string stages;
    for (int s : r.stages) stages += fmt::format("{}{}", stages.empty() ? "" : ",", s);
    out += fmt::format("  {:>4} | {:<12} |", r.pp_rank, stages);
    for (std::size_t c = 0; c < kMemCategories; ++c) {
      const int width = c == static_cast<std::size_t>(MemCategory::Activations) ? 11 : 10;
      out += fmt::format(" {:>{}.1f} |", r.bytes[c] / kMiB, width);
    }
    out += fmt::format(" {:>10.1f}\n", r.total() / kMiB);
  }
  for (const RankMemoryPlan& r : plan.ranks) {
    out += fmt::format("  rank {} activations: {} stash(es){}, {} message buffer(s){}\n", r.pp_rank,
                       r.stashes,
                       r.kept_gradients > 0 ? fmt::format(", {} set(s) of split-backward gradients", r.kept_gradients) : "",
                       r.messages, r.validation ? ", plus validation's receive buffer" : "");
  }
  const RankMemoryPlan& largest = largest_rank(plan);
  out += fmt::format("largest: rank {} with {:.1f} MiB", largest.pp_rank, largest.total() / kMiB);
  out += plan.gpu ? "; not counted: the CUDA context, NCCL's buffers, the kernels' stream-ordered scratch\n"
                  : "; not counted: the memory-mapped data, sampling\n";
  return out;
}

const RankMemoryPlan& largest_rank(const MemoryPlan& plan) {
  PPT_CHECK(!plan.ranks.empty(), "a memory plan of no ranks");
  return *std::max_element(plan.ranks.begin(), plan.ranks.end(),
                           [](const RankMemoryPlan& a, const RankMemoryPlan& b) { return a.total() < b.total(); });
}

std::size_t largest_rank_bytes(const MemoryPlan& plan) { return largest_rank(plan).total(); }

std::string memory_fixes(const Config& config, std::size_t limit_bytes) {
  struct Fix {
    const char* partition;  // nullptr: the config's
    const char* recompute;  // nullptr: the config's
    int halvings;
  };
  std::string out;
  const PipelineConfig& p = config.pipeline;
  const Recompute current = recompute_of(p.recompute);
  // Under the limit, a cost-based split moves layers off the ranks that are over it: no
  // extra compute, but the imbalance it accepts (`pptrain plan` prints it; virtual_stages 1
  // only, where the split is steered).
  const bool fixed_split = p.virtual_stages == 1 && !memory_limit_steers_partition(p);
  // Roughly cheapest first: selective remakes three pointwise outputs per block (a few
  // percent), the split's imbalance varies, full recompute runs a block's forward again.
  for (const Fix fix : {Fix{nullptr, "selective", 0}, Fix{"flops", nullptr, 0}, Fix{nullptr, "full", 0},
                        Fix{nullptr, nullptr, 1}, Fix{nullptr, "selective", 1}, Fix{nullptr, "full", 1},
                        Fix{nullptr, nullptr, 2}, Fix{nullptr, "full", 2}}) {
    if (fix.partition != nullptr && !fixed_split) continue;
    if (fix.recompute != nullptr && recompute_of(fix.recompute) <= current) continue;
    if ((p.micro_batch_size >> fix.halvings) << fix.halvings != p.micro_batch_size) continue;
    Config c = config;
    // The fix's plan is steered to the limit too, where its partition can be.
    const std::size_t own = memory_limit_bytes(config);
    if (own == 0 || limit_bytes < own) c.pipeline.memory_limit_gib = static_cast<double>(limit_bytes) / kGiB;
    std::string sets;
    if (fix.partition != nullptr) {
      c.pipeline.partition = fix.partition;
      sets += fmt::format(" --set pipeline.partition={}", fix.partition);
    }
    if (fix.recompute != nullptr) {
      c.pipeline.recompute = fix.recompute;
      sets += fmt::format(" --set pipeline.recompute={}", fix.recompute);
    }
    if (fix.halvings > 0) {
      c.pipeline.micro_batch_size >>= fix.halvings;
      c.pipeline.micro_batches <<= fix.halvings;
      sets += fmt::format(" --set pipeline.micro_batch_size={} --set pipeline.micro_batches={}",
                          c.pipeline.micro_batch_size, c.pipeline.micro_batches);
    }
    if (p.schedule.rfind("csv:", 0) == 0 && fix.halvings > 0) continue;  // the CSV fixes m
    std::size_t largest = 0;
    try {
      largest = largest_rank_bytes(plan_memory(c, make_training_plan(c, false)));
    } catch (const Error&) {
      continue;  // a fix this config cannot take (its partition, schedule or the limit refuses it)
    }
    if (largest > limit_bytes) continue;
    out += fmt::format("{}{} (largest rank {})", out.empty() ? "" : "; or", sets, memory_size(largest));
    if (out.size() > 200) break;
  }
  return out;
}

std::string memory_plan_difference(const MemoryPlan& plan, int pp_rank, const CategoryBytes& measured) {
  const RankMemoryPlan& r = plan.ranks.at(pp_rank);
  std::string out;
  for (std::size_t c = 0; c < kMemCategories; ++c) {
    if (measured[c] == r.bytes[c]) continue;
    const long long off = static_cast<long long>(measured[c]) - static_cast<long long>(r.bytes[c]);
    out += fmt::format("{}{} {:.3f} MiB ({:+} bytes against the plan's {:.3f} MiB)", out.empty() ? "" : ", ",
                       mem_category_name(static_cast<MemCategory>(c)), measured[c] / kMiB, off, r.bytes[c] / kMiB);
  }
  return out;
}

}  // namespace pptrain
