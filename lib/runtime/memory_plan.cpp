#include "runtime/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
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

}  // namespace

std::size_t RankMemoryPlan::total() const {
  std::size_t sum = 0;
  for (std::size_t b : bytes) sum += b;
  return sum;
}

MemoryPlan plan_memory(const Config& config, const TrainingPlan& plan) {
  MemoryPlan out;
  out.gpu = config.runtime.device == "cuda";
  out.storage = out.gpu ? config.runtime.precision : "fp32";
  const StageBackend backend{out.gpu, out.storage == "bf16" ? std::size_t{2} : std::size_t{4}};
  const PipelineConfig& p = config.pipeline;
  const Recompute recompute = recompute_of(p.recompute);
  const bool validation = !config.data.val.empty() && config.training.val_batches > 0;
  for (int rank = 0; rank < p.stages; ++rank) {
    RankMemoryPlan r;
    r.pp_rank = rank;
    r.validation = validation;
    PoolWalk walk(rank);
    for (int step = 0; step < 2; ++step) walk.run_step(plan.lowered);
    std::size_t message = 0;
    for (int stage = 0; stage < plan.lowered.stages(); ++stage) {  // ascending, as the executor's
      if (plan.lowered.rank_of_stage(stage) != rank) continue;
      r.stages.push_back(stage);
      const StageRange& range = plan.partition[stage];
      const StageFootprint f =
          stage_footprint(backend, plan.shape, range.first_layer, range.end_layer, p.micro_batch_size);
      if (message == 0) message = f.message;  // the executor sizes them by its first stage
      const PoolWalk::StagePool& pool = walk.stages[stage];
      const int stashes = pool.stashes, kept = pool.kept_sets;
      r.stashes += stashes;
      r.kept_gradients += kept;
      at(r.bytes, MemCategory::Params) += f.params;
      at(r.bytes, MemCategory::Grads) += f.grads;
      at(r.bytes, MemCategory::Optimizer) += f.optimizer;
      at(r.bytes, MemCategory::Workspace) += f.workspace + f.recompute_workspace_bytes(recompute);
      at(r.bytes, MemCategory::Activations) += stashes * f.stash_bytes(recompute) + kept * f.kept_gradients;
    }
    r.messages = walk.messages;
    // Validation borrows a training stash per stage (it runs between steps) and receives
    // into one message buffer of its own.
    at(r.bytes, MemCategory::Activations) += (r.messages + (validation ? 1 : 0)) * message;
    if (out.gpu) at(r.bytes, MemCategory::Workspace) += compute_device_footprint();
    out.ranks.push_back(std::move(r));
  }
  return out;
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
    const char* recompute;  // nullptr: the config's
    int halvings;
  };
  std::string out;
  const PipelineConfig& p = config.pipeline;
  const Recompute current = recompute_of(p.recompute);
  // Cheapest in compute first: selective remakes three pointwise outputs, full a whole block.
  for (const Fix fix : {Fix{"selective", 0}, Fix{"full", 0}, Fix{nullptr, 1}, Fix{"selective", 1},
                        Fix{"full", 1}, Fix{nullptr, 2}, Fix{"full", 2}}) {
    if (fix.recompute != nullptr && recompute_of(fix.recompute) <= current) continue;
    if ((p.micro_batch_size >> fix.halvings) << fix.halvings != p.micro_batch_size) continue;
    Config c = config;
    std::string sets;
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
      largest = largest_rank_bytes(plan_memory(c, make_training_plan(c)));
    } catch (const Error&) {
      continue;  // a fix this config cannot take (its partition or schedule refuses it)
    }
    if (largest > limit_bytes) continue;
    out += fmt::format("{}{} (largest rank {:.2f} GiB)", out.empty() ? "" : "; or", sets,
                       largest / kGiB);
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
