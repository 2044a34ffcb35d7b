// The stage executor (DESIGN.md section 6): each rank walks its lowered action list once
// per optimizer step. It keeps a stash per in-flight micro-batch, accumulates weight
// gradients over micro-batches, then, after the flush, sums the tied embedding's gradient
// between the first and last stage, all-reduces gradients over data-parallel replicas,
// clips by the global norm and steps AdamW. With one rank and one stage it is exactly the
// single-process trainer, so there is one training path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/transport.h"
#include "config/config.h"
#include "io/named_tensors.h"
#include "model/compute_device.h"
#include "model/stage_model.h"
#include "partition/partition.h"
#include "runtime/pipeline_layout.h"
#include "schedule/schedule.h"

namespace pptrain {

class StreamClock;

// fill(global micro-batch index, inputs (B,T), targets (B,T)). The global index is
// replica * m + micro_batch, so a run with dp replicas draws the same sequences as one
// replica with dp * m micro-batches (DESIGN.md 6a).
using BatchFiller = std::function<void(int global_micro_batch, int* inputs, int* targets)>;

// One executed action on this rank, in microseconds since the executor was made. On a GPU a
// compute action's times are when the GPU ran it (model/stream_clock.h); waits are the host's.
struct ExecutedAction {
  // "2F5", "wait 2RECV_F5", "wait data-parallel buckets", "step synced" (an instant: the
  // step's sums are done on every rank), "reduce + optimizer"
  std::string name;
  double start_us = 0.0, end_us = 0.0;
  bool compute = false;
};

struct StepReport {
  double loss = 0.0;       // mean over the global batch's tokens; the same on every rank
  double grad_norm = 0.0;  // global, before clipping
  double lr = 0.0;
  double bubble = 0.0;     // this rank: 1 - compute time / schedule time
  bool skipped = false;    // loss or grad norm not finite: no update was applied
  std::vector<double> pipeline_bubbles;  // bubble of each pipeline rank (this replica)
};

class PipelineExecutor {
 public:
  PipelineExecutor(const Config& config, const GPT2Shape& shape, schedule::Schedule lowered,
                   const std::vector<StageRange>& partition, const PipelineLayout& layout,
                   Transport& transport, MemoryTracker& memory, ComputeDevice* device = nullptr);
  ~PipelineExecutor();

  StepReport run_step(int step, const BatchFiller& fill);

  // Forward only, one batch of B sequences through the whole pipeline: mean loss, known on
  // every rank of this replica's pipeline.
  double evaluate_batch(const int* inputs, const int* targets);
  // Autoregressive sampling through the pipeline: prompt then n tokens, on every rank.
  std::vector<int> generate(const std::vector<int>& prompt, int n, std::uint64_t seed);

  const std::vector<ExecutedAction>& timeline() const { return timeline_; }
  void clear_timeline() { timeline_.clear(); }

  // Parameters and AdamW moments of this rank's chunks by name: "wte", "adam_m.wte",
  // "adam_v.wte", ... (for checkpoints; the tied wte of two chunks is the same tensor).
  NamedTensors chunk_state(int i) const;
  // Loads every chunk's parameters and moments from `tensors`; errors name `source`.
  void load_state(const NamedTensors& tensors, const std::string& source);
  // Loads parameters only (the optimizer starts fresh): initialising from a model file.
  void load_parameters(const NamedTensors& tensors, const std::string& source);
  // Element-wise sum over every rank of the job, in place (collective over the world; so
  // also a barrier). `what` names it in a timeout error.
  void sum_over_world(std::vector<double>& values, const std::string& what);
  void barrier(const std::string& what);
  // Runs `step` on every rank and agrees on the outcome (raise_if_any_rank_failed): a
  // failure is reported once, by the lowest failing rank, and no rank is left waiting. For
  // start-up work such as loading a checkpoint.
  void run_on_all_ranks(const std::function<void()>& step, const std::string& what);

  // With replicas: how this rank's stages sum their gradients over them, for the log
  // ("stage 0: buckets of layers 3-4, 1-2 during the last backward, layer 0 after the step").
  std::string grad_reduction_summary() const;

  // The chunks this rank holds, by ascending stage (for tests and checkpoints).
  int num_chunks() const { return static_cast<int>(chunks_.size()); }
  StageModel& chunk_model(int i);
  int chunk_stage(int i) const;

 private:
  struct Chunk;
  struct Buffers;

  Chunk& chunk_of_stage(int stage);
  Recompute training_recompute() const;  // pipeline.recompute, for every stash the executor makes
  void run_schedule(const BatchFiller& fill, double* loss_sum);
  void reduce_and_update(int step, double loss_sum, StepReport& report);
  void forward_only(int B, const int* inputs, const int* targets, double* loss, std::vector<float>* last_logits_row, int row);
  std::string label(const schedule::Action& a) const;
  int world_peer(const schedule::Action& comm) const;
  double now_us() const;

  Config config_;
  GPT2Shape shape_;
  schedule::Schedule schedule_;
  PipelineLayout layout_;
  Transport& transport_;
  MemoryTracker& memory_;
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::unique_ptr<Buffers> buffers_;
  GroupId world_group_ = kNoGroup, pipeline_group_ = kNoGroup, replica_group_ = kNoGroup, embedding_group_ = kNoGroup;
  std::map<int, std::unique_ptr<WordBuffer>> forward_only_received_;  // by batch size
  std::vector<ExecutedAction> timeline_;
  std::unique_ptr<StreamClock> clock_;  // on a GPU: when the compute actions ran there
  std::int64_t origin_ns_ = 0;
};

}  // namespace pptrain
