#include "runtime/pipeline_executor.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <tuple>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/stream_clock.h"
#include "runtime/generate.h"
#include "runtime/grad_reduction.h"
#include "runtime/lr_schedule.h"
#include "schedule/lowering.h"
#include "schedule/posting_order.h"

namespace pptrain {

using schedule::Action;
using schedule::ActionKind;

struct PipelineExecutor::Chunk {
  int stage = 0;
  std::unique_ptr<StageModel> model;
  std::vector<std::unique_ptr<Stash>> free;       // stash pool: peak in-flight micro-batches
  std::map<int, std::unique_ptr<Stash>> live;     // micro-batch -> its stash
  // Forward-only passes of another batch size than training's (sampling: 1), by size.
  // Evaluation borrows a training stash: it runs between steps, when all are free.
  std::map<int, std::unique_ptr<Stash>> forward_only;
  // With data-parallel replicas: sums the gradients over them. The step's last B or W of
  // this stage reports its layers to it, so buckets start during that backward.
  std::unique_ptr<GradReducer> reducer;
  std::optional<Action> last_weight_grads;
};

// Activation-sized (B,T,C) buffers in the backend's memory for messages and local gradient
// hand-offs, keyed by (role, stage, micro-batch) and drawn from a pool so a step allocates
// nothing once warm. Sizes are in 4-byte words (StageModel::activation_words).
struct PipelineExecutor::Buffers {
  enum Role { kReceivedActivation, kOutputGrad, kGradToSend };
  using Key = std::tuple<int, int, int>;
  Buffers(StageModel& m, std::size_t w) : maker(m), words(w) {}
  float* acquire(Role role, int stage, int mb) {
    const Key key{role, stage, mb};
    PPT_CHECK(in_use.find(key) == in_use.end(), "buffer ({}, stage {}, micro-batch {}) taken twice",
              static_cast<int>(role), stage, mb);
    std::unique_ptr<WordBuffer> b;
    if (free.empty()) {
      b = maker.make_message_buffer(words);
    } else {
      b = std::move(free.back());
      free.pop_back();
    }
    return in_use.emplace(key, std::move(b)).first->second->data();
  }
  float* get(Role role, int stage, int mb) {
    auto it = in_use.find(Key{role, stage, mb});
    PPT_CHECK(it != in_use.end(), "no buffer ({}, stage {}, micro-batch {})", static_cast<int>(role), stage, mb);
    return it->second->data();
  }
  void release(Role role, int stage, int mb) {
    auto it = in_use.find(Key{role, stage, mb});
    if (it == in_use.end()) return;
    free.push_back(std::move(it->second));
    in_use.erase(it);
  }
  StageModel& maker;  // allocates in the backend's memory
  std::size_t words;
  std::vector<std::unique_ptr<WordBuffer>> free;
  std::map<Key, std::unique_ptr<WordBuffer>> in_use;
};

namespace {
using RequestKey = std::tuple<int, int, int>;  // (kind, stage, micro-batch) of a comm action
RequestKey request_key(const Action& a) { return {static_cast<int>(a.kind), a.stage, a.micro_batch}; }
}  // namespace

PipelineExecutor::PipelineExecutor(const Config& config, const GPT2Shape& shape,
                                   schedule::Schedule lowered,
                                   const std::vector<StageRange>& partition,
                                   const PipelineLayout& layout, Transport& transport,
                                   MemoryTracker& memory, ComputeDevice* device)
    : config_(config),
      shape_(shape),
      schedule_(std::move(lowered)),
      layout_(layout),
      transport_(transport),
      memory_(memory) {
  origin_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
  PPT_CHECK(schedule_.ranks == layout.pp && schedule_.virtual_stages == layout.v &&
                schedule_.placement == layout.placement,
            "schedule {} ({} placement) does not fit {} pipeline ranks x {} virtual stages ({} placement)",
            schedule::describe(schedule_), schedule::placement_name(schedule_.placement), layout.pp,
            layout.v, schedule::placement_name(layout.placement));
  PPT_CHECK(static_cast<int>(partition.size()) == layout.stages(),
            "partition has {} stages, the pipeline {}", partition.size(), layout.stages());
  if (!transport.matches_by_tag()) {
    const std::string why = schedule::channel_order_mismatch(schedule_);
    PPT_CHECK(why.empty(), "{}: the NCCL transport matches messages by their order, and schedule {} "
              "does not keep it: {}; use runtime.comm: mpi", config.where("runtime.comm"),
              schedule::describe(schedule_), why);
  }
  const int B = config.pipeline.micro_batch_size;
  for (int stage : layout.local_stages()) {
    auto c = std::make_unique<Chunk>();
    c->stage = stage;
    c->model = make_stage_model(shape, partition[stage].first_layer, partition[stage].end_layer, B,
                                config.training.seed, memory, device);
    chunks_.push_back(std::move(c));
  }
  if (device != nullptr) clock_ = std::make_unique<StreamClock>(*device);
  StageModel& first_model = *chunks_.front()->model;
  buffers_ = std::make_unique<Buffers>(first_model, first_model.activation_words(B));
  // Groups are made collectively by every world rank, in the same order on all of them.
  world_group_ = transport.split_group(0, layout.world_rank);
  pipeline_group_ = transport.split_group(layout.dp_rank, layout.pp_rank);
  replica_group_ = transport.split_group(layout.pp_rank, layout.dp_rank);
  const bool holds_tied = layout.stages() > 1 && layout.pp > 1 &&
                          (layout.holds_stage(0) || layout.holds_stage(layout.stages() - 1));
  embedding_group_ = transport.split_group(holds_tied ? layout.dp_rank : -1, layout.pp_rank);
  if (layout.dp > 1) {
    std::vector<int> replicas;
    for (int d = 0; d < layout.dp; ++d) replicas.push_back(layout.world_rank_of(layout.pp_rank, d));
    for (auto& c : chunks_) {
      c->reducer = std::make_unique<GradReducer>(
          *c->model, config.parallel.overlap_grad_reduce, grad_bucket_words(config.parallel.grad_bucket_mib),
          transport, replica_group_, fmt::format("{}", fmt::join(replicas, ", ")));
      for (const Action& a : schedule_.actions[layout.pp_rank]) {
        const bool weight_grads = a.kind == ActionKind::Backward || a.kind == ActionKind::BackwardWeight;
        if (a.stage == c->stage && weight_grads) c->last_weight_grads = a;
      }
    }
  }
}

PipelineExecutor::~PipelineExecutor() = default;

Recompute PipelineExecutor::training_recompute() const {
  return recompute_of(config_.pipeline.recompute);
}

std::string PipelineExecutor::grad_reduction_summary() const {
  std::vector<std::string> parts;
  for (const auto& c : chunks_) {
    if (c->reducer) parts.push_back(fmt::format("stage {}: {}", c->stage, c->reducer->summary()));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

StageModel& PipelineExecutor::chunk_model(int i) { return *chunks_.at(i)->model; }
int PipelineExecutor::chunk_stage(int i) const { return chunks_.at(i)->stage; }

PipelineExecutor::Chunk& PipelineExecutor::chunk_of_stage(int stage) {
  for (auto& c : chunks_) {
    if (c->stage == stage) return *c;
  }
  PPT_THROW("stage {} is not held by pipeline rank {}", stage, layout_.pp_rank);
}

double PipelineExecutor::now_us() const {
  return (std::chrono::steady_clock::now().time_since_epoch().count() - origin_ns_) / 1e3;
}

int PipelineExecutor::world_peer(const Action& comm) const {
  return layout_.world_rank_of(schedule::peer_rank(schedule_, comm), layout_.dp_rank);
}

std::string PipelineExecutor::label(const Action& a) const {
  const bool send = schedule::is_send(a.kind);
  return fmt::format("{} {} rank {}", schedule::to_string(a), send ? "to" : "from", world_peer(a));
}

StepReport PipelineExecutor::run_step(int step, const BatchFiller& fill) {
  for (auto& c : chunks_) c->model->zero_grads();
  const double t0 = now_us();
  const std::size_t first_event = timeline_.size();
  double loss_sum = 0.0;
  run_schedule(fill, &loss_sum);
  StepReport report;
  // The span runs from the step's first event (not from t0: what runs before the first action
  // starts, such as posting receives or a late start under load, is no part of the pipeline)
  // to the end of its schedule, where the trace's "reduce + optimizer" begins: the span
  // scripts/plot.py and the trace tests measure too.
  double busy = 0.0, first_start = t0;
  for (std::size_t i = first_event; i < timeline_.size(); ++i) {
    if (timeline_[i].compute) busy += timeline_[i].end_us - timeline_[i].start_us;
    first_start = i == first_event ? timeline_[i].start_us : std::min(first_start, timeline_[i].start_us);
  }
  const double span = now_us() - first_start;
  report.bubble = span > 0.0 ? std::max(0.0, 1.0 - busy / span) : 0.0;
  reduce_and_update(step, loss_sum, report);
  return report;
}

void PipelineExecutor::run_schedule(const BatchFiller& fill, double* loss_sum) {
  const std::vector<Action>& list = schedule_.actions[layout_.pp_rank];
  const int S = layout_.stages(), m = schedule_.micro_batches;
  const int B = config_.pipeline.micro_batch_size, T = shape_.max_seq_len;
  const std::size_t count = buffers_->words;
  // Each token's loss is scaled by 1/(all tokens of the global batch), so the gradients
  // summed over micro-batches and replicas are those of the global mean loss.
  const float dloss_scale = 1.0f / static_cast<float>(static_cast<double>(layout_.dp) * m * B * T);
  std::vector<int> tokens(static_cast<std::size_t>(B) * T), targets(tokens.size());
  std::map<RequestKey, Transport::Request> requests;

  auto post = [&](const Action& a) {
    const RequestKey key = request_key(a);
    if (requests.count(key)) return;  // posted ahead
    const int tag = schedule::comm_tag(schedule_, a), peer = world_peer(a);
    Transport::Request r = 0;
    switch (a.kind) {
      case ActionKind::SendF: {
        Chunk& c = chunk_of_stage(a.stage);
        r = transport_.isend(c.model->output(*c.live.at(a.micro_batch)), count, peer, tag);
        break;
      }
      case ActionKind::SendB:
        r = transport_.isend(buffers_->get(Buffers::kGradToSend, a.stage, a.micro_batch), count, peer, tag);
        break;
      case ActionKind::RecvF:
        r = transport_.irecv(buffers_->acquire(Buffers::kReceivedActivation, a.stage, a.micro_batch), count, peer, tag);
        break;
      case ActionKind::RecvB:
        r = transport_.irecv(buffers_->acquire(Buffers::kOutputGrad, a.stage, a.micro_batch), count, peer, tag);
        break;
      default: PPT_THROW("{} is not a communication action", schedule::to_string(a));
    }
    requests.emplace(key, r);
  };
  auto wait = [&](const Action& a) {
    auto it = requests.find(request_key(a));
    PPT_CHECK(it != requests.end(), "{} was never posted: the schedule is not lowered", schedule::to_string(a));
    const double start = now_us();
    transport_.wait(it->second, label(a));
    requests.erase(it);
    timeline_.push_back({"wait " + schedule::to_string(a), start, now_us(), false});
  };
  auto local = [&](int stage) { return layout_.holds_stage(stage); };
  // The micro-batch's backward (B, or W after I) is done: its stash goes back to the free
  // list once its output, which may still be on its way to the next stage, has left.
  auto retire = [&](Chunk& c, int stage, int mb) {
    const Action send_f{stage, ActionKind::SendF, mb};
    if (requests.count(request_key(send_f))) wait(send_f);
    auto it = c.live.find(mb);
    c.free.push_back(std::move(it->second));
    c.live.erase(it);
  };

  // A compute action's times: the host's clock on the CPU; on a GPU, marks in the compute
  // stream (model/stream_clock.h), made times when the step has settled below.
  struct Started {
    double host_us = 0.0;
    int mark = -1;
  };
  struct Marked {
    std::size_t entry;  // in timeline_
    int start, end;
  };
  std::vector<Marked> marked;
  auto start_compute = [&] { return clock_ ? Started{0.0, clock_->mark()} : Started{now_us(), -1}; };
  auto finish_compute = [&](const Action& a, const Started& start) {
    if (clock_) marked.push_back({timeline_.size(), start.mark, clock_->mark()});
    timeline_.push_back({schedule::to_string(a), start.host_us, clock_ ? 0.0 : now_us(), true});
  };
  // The step's last weight gradients of a chunk start its data-parallel sums, layer by layer.
  auto layers_done = [](Chunk& c, const Action& a) -> StageModel::LayerGradsDone {
    if (!c.reducer || c.last_weight_grads != a) return nullptr;
    return [&c](int layer) { c.reducer->layer_done(layer); };
  };
  // Comm actions are posted in the list's order, the receives of the comm group after a
  // compute just before it (schedule/posting_order.h), so the data can arrive meanwhile.
  auto compute = [&](const Action& a) {
    Chunk& c = chunk_of_stage(a.stage);
    const int s = a.stage, mb = a.micro_batch;
    if (a.kind == ActionKind::Forward) {
      const float* input = nullptr;
      if (s == 0 || s == S - 1) fill(layout_.dp_rank * m + mb, tokens.data(), targets.data());
      if (s > 0 && local(s - 1)) {
        Chunk& prev = chunk_of_stage(s - 1);
        input = prev.model->output(*prev.live.at(mb));
      } else if (s > 0) {
        wait(Action{s, ActionKind::RecvF, mb});
        input = buffers_->get(Buffers::kReceivedActivation, s, mb);
      }
      std::unique_ptr<Stash> stash;
      if (c.free.empty()) {
        stash = c.model->make_stash(B, training_recompute());
      } else {
        stash = std::move(c.free.back());
        c.free.pop_back();
      }
      const Started start = start_compute();
      c.model->forward(*stash, tokens.data(), input, s == S - 1 ? targets.data() : nullptr,
                       dloss_scale, true);
      finish_compute(a, start);
      c.live.emplace(mb, std::move(stash));
      buffers_->release(Buffers::kReceivedActivation, s, mb);
    } else if (a.kind == ActionKind::Backward || a.kind == ActionKind::BackwardInput) {
      const float* dout = nullptr;
      if (s < S - 1) {
        if (!local(s + 1)) wait(Action{s, ActionKind::RecvB, mb});
        dout = buffers_->get(Buffers::kOutputGrad, s, mb);
      }
      auto it = c.live.find(mb);
      PPT_CHECK(it != c.live.end(), "{} runs before its forward", schedule::to_string(a));
      const Started start = start_compute();
      if (a.kind == ActionKind::Backward) {
        c.model->backward(*it->second, dout, layers_done(c, a));
      } else {
        c.model->backward_input(*it->second, dout);
      }
      if (s > 0) {
        float* dst = local(s - 1) ? buffers_->acquire(Buffers::kOutputGrad, s - 1, mb)
                                  : buffers_->acquire(Buffers::kGradToSend, s, mb);
        c.model->copy_input_grad(dst, B);
      }
      finish_compute(a, start);
      buffers_->release(Buffers::kOutputGrad, s, mb);
      if (a.kind == ActionKind::Backward) retire(c, s, mb);
    } else {
      // W: the stash's kept gradients become parameter gradients; nothing is sent.
      auto it = c.live.find(mb);
      PPT_CHECK(it != c.live.end(), "{} runs before its forward", schedule::to_string(a));
      const Started start = start_compute();
      c.model->backward_weight(*it->second, layers_done(c, a));
      finish_compute(a, start);
      retire(c, s, mb);
    }
  };
  schedule::for_each_in_posting_order(list, post, compute);
  // Flush: the last sends (gradients to the previous stage) must land before the next step
  // reuses their buffers.
  while (!requests.empty()) {
    const auto [kind, stage, mb] = requests.begin()->first;
    const Action a{stage, static_cast<ActionKind>(kind), mb};
    PPT_CHECK(schedule::is_send(a.kind), "{} was posted but never used", schedule::to_string(a));
    wait(a);
    buffers_->release(Buffers::kGradToSend, stage, mb);
  }
  for (auto& ch : chunks_) {
    PPT_CHECK(ch->live.empty(), "stage {} ended the step with {} micro-batches in flight",
              ch->stage, ch->live.size());
  }
  if (local(S - 1)) *loss_sum = chunk_of_stage(S - 1).model->take_loss_sum();
  if (clock_) {
    // One wait per step for the compute stream (the step's gradient norm reads it soon anyway).
    clock_->settle([this] { return now_us(); });
    for (const Marked& m : marked) {
      timeline_[m.entry].start_us = clock_->at(m.start);
      timeline_[m.entry].end_us = clock_->at(m.end);
    }
  }
}

void PipelineExecutor::reduce_and_update(int step, double loss_sum, StepReport& report) {
  const int S = layout_.stages();
  const double t0 = now_us();
  // The tied embedding: stage 0 (lookup) and stage S-1 (LM head) hold copies of wte whose
  // gradients are summed, so both take the same AdamW step and stay identical.
  Chunk* first = layout_.holds_stage(0) ? &chunk_of_stage(0) : nullptr;
  Chunk* last = layout_.holds_stage(S - 1) ? &chunk_of_stage(S - 1) : nullptr;
  const std::size_t wte_floats = static_cast<std::size_t>(shape_.padded_vocab_size) * shape_.channels;
  // Data parallel (runtime/grad_reduction.h): the buckets the last backwards started, then
  // the tied-embedding sum, then what no bucket held.
  for (auto& c : chunks_) {
    if (c->reducer) c->reducer->wait_started();
  }
  if (layout_.dp > 1 && config_.parallel.overlap_grad_reduce) {
    timeline_.push_back({"wait data-parallel buckets", t0, now_us(), false});
  }
  if (S > 1 && first != nullptr && last != nullptr) {
    first->model->sum_tied_wte_grads(*last->model);
  } else if (S > 1 && (first != nullptr || last != nullptr)) {
    transport_.allreduce_sum((first ? first : last)->model->grad("wte"), wte_floats,
                             embedding_group_, "the tied-embedding gradient all-reduce");
  }
  for (auto& c : chunks_) {
    if (c->reducer) c->reducer->reduce_rest();
  }
  // [sum of squares, loss sum, bubble of each pipeline rank]; the head's copy of wte is not
  // counted in the norm when stage 0 holds the other: the model has one wte.
  std::vector<double> sums(2 + layout_.pp, 0.0);
  for (auto& c : chunks_) {
    StageModel& model = *c->model;
    sums[0] += model.grad_sum_of_squares(S > 1 && c->stage == S - 1 && !model.has_embedding());
  }
  sums[1] = loss_sum;
  sums[2 + layout_.pp_rank] = report.bubble;
  if (layout_.pp > 1) transport_.allreduce_sum(sums.data(), sums.size(), pipeline_group_, "the loss and grad-norm all-reduce");
  if (layout_.dp > 1) transport_.allreduce_sum(&sums[1], 1, replica_group_, "the loss all-reduce");
  // Every rank leaves these sums at about the same moment: the trace's one common instant of
  // the step, where scripts/plot.py aligns the ranks' clocks.
  const double synced = now_us();
  timeline_.push_back({"step synced", synced, synced, false});
  report.loss = sums[1] / (static_cast<double>(layout_.dp) * schedule_.micro_batches);
  // max() guards the head-wte subtraction's round-off; it must not turn a NaN into 0.
  report.grad_norm = std::isnan(sums[0]) ? sums[0] : std::sqrt(std::max(0.0, sums[0]));
  report.pipeline_bubbles.assign(sums.begin() + 2, sums.end());
  report.lr = learning_rate(config_.training, step);
  // Every rank sees the same reduced loss and norm, so all skip together.
  report.skipped = !std::isfinite(report.loss) || !std::isfinite(report.grad_norm);
  const double max_norm = config_.training.grad_clip;
  const float clip = max_norm > 0.0 && report.grad_norm > max_norm
                         ? static_cast<float>(max_norm / report.grad_norm)
                         : 1.0f;
  for (auto& c : chunks_) {
    if (report.skipped) break;
    c->model->optimizer_step(config_.training, static_cast<float>(report.lr), step + 1, clip);
  }
  timeline_.push_back({"reduce + optimizer", t0, now_us(), false});
}

void PipelineExecutor::forward_only(int B, const int* inputs, const int* targets, double* loss,
                                    std::vector<float>* logits_row, int row) {
  const int S = layout_.stages();
  const std::size_t count = chunks_.front()->model->activation_words(B);
  // Tags above the schedule's range [0, 2*S*m), one per stage boundary.
  const int tag_base = 2 * S * schedule_.micro_batches;
  std::vector<Transport::Request> sends;
  // One receive buffer per batch size, kept: sampling calls this once per generated token.
  std::unique_ptr<WordBuffer>& received = forward_only_received_[B];
  if (!received) received = chunks_.front()->model->make_message_buffer(count);
  double local_loss = 0.0;
  std::map<int, Stash*> stashes;  // by stage
  for (auto& c : chunks_) {  // ascending stages: data flows forward, sends never block
    const int s = c->stage;
    Stash* stash = nullptr;
    if (B == config_.pipeline.micro_batch_size) {
      PPT_CHECK(c->live.empty(), "a forward-only pass while stage {} has micro-batches in flight", s);
      if (c->free.empty()) c->free.push_back(c->model->make_stash(B, training_recompute()));
      stash = c->free.back().get();
    } else {
      auto& own = c->forward_only[B];
      if (!own) own = c->model->make_stash(B, training_recompute());
      stash = own.get();
    }
    stashes[s] = stash;
    const float* input = nullptr;
    if (s > 0 && layout_.holds_stage(s - 1)) {
      input = chunk_of_stage(s - 1).model->output(*stashes.at(s - 1));
    } else if (s > 0) {
      const int peer = layout_.world_rank_of(layout_.rank_of_stage(s - 1), layout_.dp_rank);
      transport_.wait(transport_.irecv(received->data(), count, peer, tag_base + s),
                      fmt::format("the forward-only activation of stage {} from rank {}", s, peer));
      input = received->data();
    }
    const bool last = s == S - 1;
    c->model->forward(*stash, inputs, input, last ? targets : nullptr, 0.0f, false);
    if (last && targets != nullptr) local_loss = c->model->take_loss_sum();
    if (last && logits_row != nullptr) c->model->copy_logits_row(*stash, row, *logits_row);
    if (!last && !layout_.holds_stage(s + 1)) {
      const int peer = layout_.world_rank_of(layout_.rank_of_stage(s + 1), layout_.dp_rank);
      sends.push_back(transport_.isend(c->model->output(*stash), count, peer, tag_base + s + 1));
    }
  }
  for (Transport::Request r : sends) transport_.wait(r, "a forward-only activation send");
  if (loss != nullptr) {
    *loss = local_loss;
    if (layout_.pp > 1) transport_.allreduce_sum(loss, 1, pipeline_group_, "the validation loss all-reduce");
  }
}

double PipelineExecutor::evaluate_batch(const int* inputs, const int* targets) {
  double loss = 0.0;
  forward_only(config_.pipeline.micro_batch_size, inputs, targets, &loss, nullptr, 0);
  return loss;
}

NamedTensors PipelineExecutor::chunk_state(int i) const {
  const StageModel& model = *chunks_.at(i)->model;
  std::vector<float> params(model.num_params()), m(params.size()), v(params.size());
  model.read_params(params.data());
  model.read_moments(m.data(), v.data());
  NamedTensors out;
  add_stage_tensors(out, "", model.table(), params.data());
  add_stage_tensors(out, "adam_m.", model.table(), m.data());
  add_stage_tensors(out, "adam_v.", model.table(), v.data());
  return out;
}

void PipelineExecutor::load_state(const NamedTensors& tensors, const std::string& source) {
  for (auto& c : chunks_) {
    StageModel& model = *c->model;
    std::vector<float> params(model.num_params()), m(params.size()), v(params.size());
    load_stage_tensors(tensors, "", model.table(), params.data(), source);
    load_stage_tensors(tensors, "adam_m.", model.table(), m.data(), source);
    load_stage_tensors(tensors, "adam_v.", model.table(), v.data(), source);
    model.write_params(params.data());
    model.write_moments(m.data(), v.data());
  }
}

void PipelineExecutor::load_parameters(const NamedTensors& tensors, const std::string& source) {
  for (auto& c : chunks_) {
    std::vector<float> params(c->model->num_params());
    load_stage_tensors(tensors, "", c->model->table(), params.data(), source);
    c->model->write_params(params.data());
  }
}

void PipelineExecutor::sum_over_world(std::vector<double>& values, const std::string& what) {
  if (transport_.world_size() > 1) transport_.allreduce_sum(values.data(), values.size(), world_group_, what);
}

void PipelineExecutor::barrier(const std::string& what) {
  std::vector<double> nothing(1, 0.0);
  sum_over_world(nothing, what);
}

void PipelineExecutor::run_on_all_ranks(const std::function<void()>& step, const std::string& what) {
  std::optional<Error> error;
  try {
    step();
  } catch (const Error& e) {
    error = e;
  }
  // Slot r is 1 if rank r failed; the sum tells every rank who failed.
  std::vector<double> failed(transport_.world_size(), 0.0);
  failed[transport_.rank()] = error ? 1.0 : 0.0;
  sum_over_world(failed, what);
  const auto first = std::find(failed.begin(), failed.end(), 1.0);
  const int lowest = first == failed.end() ? -1 : static_cast<int>(first - failed.begin());
  raise_if_any_rank_failed(lowest, transport_.rank(), error);
}

std::vector<int> PipelineExecutor::generate(const std::vector<int>& prompt, int n, std::uint64_t seed) {
  PPT_CHECK(!prompt.empty(), "sampling needs a non-empty prompt");
  const int T = shape_.max_seq_len;
  std::vector<int> tokens = prompt, window(T, 0);
  std::vector<float> logits;
  Rng rng(stream_key(seed, "sample"));
  const bool last = layout_.holds_stage(layout_.stages() - 1);
  for (int i = 0; i < n; ++i) {
    const int len = std::min<int>(static_cast<int>(tokens.size()), T);
    std::fill(window.begin(), window.end(), 0);
    std::copy(tokens.end() - len, tokens.end(), window.begin());
    forward_only(1, window.data(), nullptr, nullptr, last ? &logits : nullptr, len - 1);
    // The last stage draws; the token reaches the other ranks by a sum where they add 0.
    double next = last ? sample_token(logits.data(), shape_.vocab_size, rng) : 0.0;
    if (layout_.pp > 1) transport_.allreduce_sum(&next, 1, pipeline_group_, "the sampled token broadcast");
    tokens.push_back(static_cast<int>(next));
  }
  return tokens;
}

}  // namespace pptrain
