// [cuda] the whole CUDA training path of one stage against the CPU backend: CudaStageModel
// (fp32 and bf16 storage) vs CpuStageModel on a tiny GPT-2, for the loss, every parameter
// gradient, a pipeline split handing device activations and gradients between stages, one
// AdamW step, and a few training steps. The CPU backend is itself checked against central
// differences ([gradcheck]) and against PyTorch (it_hf_export).
#include <memory>

#include "cuda_test_util.h"
#include "model/compute_device.h"
#include "model/cpu_stage_model.h"
#include "model/cuda_stage_model.h"
#include "model/stage_footprint.h"

namespace {

using namespace pptrain;
using pptrain::test::relative_error;

// fp32 storage runs the same math in another order (cuBLASLt, block reductions): 1e-4
// relative. bf16 storage rounds every activation and weight to 8 bits of mantissa: 5e-2.
constexpr double kFp32Tol = 1e-4;
constexpr double kBf16Tol = 5e-2;

// V odd and padded, T and C not multiples of anything in particular, 3 blocks.
GPT2Shape small_shape() { return GPT2Shape{101, 128, 33, 3, 4, 48}; }

struct Batch {
  int B = 3;
  std::vector<int> tokens, targets;
};

Batch make_batch(const GPT2Shape& s, std::uint64_t key) {
  Batch b;
  Rng rng(key);
  b.tokens.resize(static_cast<std::size_t>(b.B) * s.max_seq_len);
  for (int& t : b.tokens) t = static_cast<int>(rng.below(s.vocab_size));
  b.targets.assign(b.tokens.begin() + 1, b.tokens.end());
  b.targets.push_back(b.tokens.front());
  return b;
}

struct Result {
  double loss = 0.0;
  std::vector<float> grads, params_after_step;
};

// Forward + backward of one micro-batch through `stages` (consecutive, same backend), then
// one AdamW step; gradients gathered in whole-model table order (wte summed over copies).
// split: every stage's I top down, then every W (zero-bubble order), instead of B.
// recompute: what the stashes keep (model/stage_model.h).
Result run(std::vector<std::unique_ptr<StageModel>>& stages, const GPT2Shape& s, const Batch& b,
           const StageModel& whole_table, float lr = 1e-3f, int t = 1, bool split = false,
           Recompute recompute = Recompute::None) {
  const float scale = 1.0f / static_cast<float>(b.B * s.max_seq_len);
  std::vector<std::unique_ptr<Stash>> stashes;
  const float* x = nullptr;
  Result r;
  for (auto& st : stages) {
    stashes.push_back(st->make_stash(b.B, recompute));
    st->zero_grads();
    st->forward(*stashes.back(), b.tokens.data(), x, b.targets.data(), scale, true);
    if (!st->has_head()) x = st->output(*stashes.back());
  }
  r.loss = stages.back()->take_loss_sum();
  std::vector<std::unique_ptr<WordBuffer>> grads_between;
  const float* dout = nullptr;
  for (std::size_t i = stages.size(); i-- > 0;) {
    if (split) {
      stages[i]->backward_input(*stashes[i], dout);
    } else {
      stages[i]->backward(*stashes[i], dout);
    }
    if (!stages[i]->has_embedding()) {
      grads_between.push_back(stages[i]->make_message_buffer(stages[i]->activation_words(b.B)));
      stages[i]->copy_input_grad(grads_between.back()->data(), b.B);
      dout = grads_between.back()->data();
    }
  }
  if (split) {
    for (std::size_t i = stages.size(); i-- > 0;) stages[i]->backward_weight(*stashes[i]);
  }
  r.grads.assign(whole_table.num_params(), 0.0f);
  r.params_after_step.assign(whole_table.num_params(), 0.0f);
  for (auto& st : stages) {
    std::vector<float> g(st->num_params());
    st->read_grads(g.data());
    for (const ParamEntry& e : st->table().entries()) {
      const std::size_t to = whole_table.table().find(e.spec.name).offset;
      for (std::size_t j = 0; j < e.spec.numel(); ++j) r.grads[to + j] += g[e.offset + j];
    }
  }
  // As the executor does: both copies of the tied wte step with the summed gradient, as the
  // whole model's one wte does (without it the split runs' wte differs by ~2 lr per element).
  if (stages.size() > 1) stages.front()->sum_tied_wte_grads(*stages.back());
  TrainingConfig tc;
  for (auto& st : stages) {
    st->optimizer_step(tc, lr, t, 1.0f);
    std::vector<float> p(st->num_params());
    st->read_params(p.data());
    for (const ParamEntry& e : st->table().entries()) {
      const std::size_t to = whole_table.table().find(e.spec.name).offset;
      for (std::size_t j = 0; j < e.spec.numel(); ++j) r.params_after_step[to + j] = p[e.offset + j];
    }
  }
  return r;
}

std::vector<std::unique_ptr<StageModel>> make_stages(const GPT2Shape& s, const std::vector<int>& cuts,
                                                     MemoryTracker& host, ComputeDevice* device) {
  std::vector<int> bounds = {0};
  bounds.insert(bounds.end(), cuts.begin(), cuts.end());
  bounds.push_back(s.num_layers());
  std::vector<std::unique_ptr<StageModel>> stages;
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    stages.push_back(make_stage_model(s, bounds[i], bounds[i + 1], 3, 42, host, device));
  }
  return stages;
}

}  // namespace

TEST_CASE("CUDA stage model tracks the CPU backend: loss, gradients, AdamW, pipeline split", "[cuda]") {
  const GPT2Shape s = small_shape();
  const Batch b = make_batch(s, 7);
  MemoryTracker host;
  CpuStageModel whole(s, 0, s.num_layers(), b.B, 42, host);
  auto cpu_stages = make_stages(s, {}, host, nullptr);
  const Result ref = run(cpu_stages, s, b, whole);
  for (const std::string precision : {"fp32", "bf16"}) {
    const double tol = precision == "fp32" ? kFp32Tol : kBf16Tol;
    ComputeDevice device(0, precision);
    for (const std::vector<int>& cuts : {std::vector<int>{}, std::vector<int>{2}, std::vector<int>{1, 3}}) {
      INFO(precision << ", " << cuts.size() + 1 << " stage(s)");
      auto stages = make_stages(s, cuts, host, &device);
      const Result got = run(stages, s, b, whole);
      CHECK(std::abs(got.loss - ref.loss) / ref.loss < tol);
      CHECK(relative_error(got.grads, ref.grads) < tol);
      CHECK(relative_error(got.params_after_step, ref.params_after_step) < tol);
    }
    CHECK(device.memory().peak(MemCategory::Activations) > 0);
  }
}

TEST_CASE("CUDA stage model: a split backward, or recomputing (full or selective), gives bitwise the whole one", "[cuda]") {
  const GPT2Shape s = small_shape();
  const Batch b = make_batch(s, 9);
  MemoryTracker host;
  CpuStageModel whole(s, 0, s.num_layers(), b.B, 42, host);
  for (const std::string precision : {"fp32", "bf16"}) {
    ComputeDevice device(0, precision);
    for (const std::vector<int>& cuts : {std::vector<int>{}, std::vector<int>{1, 3}}) {
      auto once = make_stages(s, cuts, host, &device);
      const Result ref = run(once, s, b, whole);
      // Selective's forward runs GELU by its own kernel (so that its remade output is the one
      // the forward used), not by cuBLASLt's epilogue: it is compared with fusion off in both.
      device.blas().set_gelu_fusion(false);
      auto unfused = make_stages(s, cuts, host, &device);
      const Result ref_unfused = run(unfused, s, b, whole);
      device.blas().set_gelu_fusion(true);
      for (int variant = 1; variant < 6; ++variant) {  // bit 0: split; variant / 2: the Recompute
        const bool split = variant & 1;
        const Recompute recompute = variant / 2 == 0 ? Recompute::None
                                    : variant / 2 == 1 ? Recompute::Full
                                                       : Recompute::Selective;
        INFO(precision << ", " << cuts.size() + 1 << " stage(s), split " << split << ", recompute "
                       << (variant / 2 == 0 ? "none" : variant / 2 == 1 ? "full" : "selective"));
        const bool selective = recompute == Recompute::Selective;
        device.blas().set_gelu_fusion(!selective);
        auto stages = make_stages(s, cuts, host, &device);
        const Result got = run(stages, s, b, whole, 1e-3f, 1, split, recompute);
        device.blas().set_gelu_fusion(true);
        const Result& want = selective ? ref_unfused : ref;
        CHECK(got.loss == want.loss);
        CHECK(relative_error(got.grads, want.grads) == 0.0);
        CHECK(relative_error(got.params_after_step, want.params_after_step) == 0.0);
      }
    }
  }
}

TEST_CASE("CUDA stage model trains in bf16, reproducibly", "[cuda]") {
  const GPT2Shape s = small_shape();
  const Batch b = make_batch(s, 11);
  MemoryTracker host;
  CpuStageModel table(s, 0, s.num_layers(), b.B, 42, host);
  auto train = [&](ComputeDevice* device) {
    auto stages = make_stages(s, {}, host, device);
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) losses.push_back(run(stages, s, b, table, 1e-2f, step + 1).loss);
    return losses;
  };
  const std::vector<double> cpu = train(nullptr);
  ComputeDevice device(0, "bf16");
  const std::vector<double> first = train(&device), second = train(&device);
  INFO("loss: cpu " << cpu.front() << " -> " << cpu.back() << ", cuda bf16 " << first.front() << " -> " << first.back());
  CHECK(first == second);  // same seeds, same stochastic rounding: bitwise the same
  CHECK(first.back() < 0.5 * first.front());
  // Compared at step 10, while the loss is still large: by step 30 the CPU's is below 0.1
  // and falling ~18% a step, so any lag would read as a large relative difference.
  CHECK(std::abs(first[9] - cpu[9]) / cpu[9] < 0.1);
}

TEST_CASE("CUDA stage footprint is what the model allocates, piece by piece", "[cuda]") {
  // The memory plan (runtime/memory_plan.h) sizes GPU runs from these figures, also on
  // machines without a GPU; only the encoder's sort scratch is CUB's to size at run time.
  namespace kc = pptrain::kernels::cuda;
  const GPT2Shape s = small_shape();
  const Batch b = make_batch(s, 13);
  const int N = b.B * s.max_seq_len;
  for (const std::string precision : {"fp32", "bf16"}) {
    ComputeDevice device(0, precision);
    MemoryTracker& mem = device.memory();
    auto current = [&](MemCategory c) { return mem.current(c); };
    CHECK(current(MemCategory::Workspace) == compute_device_footprint());
    const StageBackend backend{true, precision == "bf16" ? std::size_t{2} : std::size_t{4}};
    for (const auto& [first, end] : std::vector<std::pair<int, int>>{{0, 5}, {0, 2}, {1, 4}, {3, 5}, {4, 5}}) {
      INFO(precision << ", layers [" << first << ", " << end << ")");
      StageFootprint f = stage_footprint(backend, s, first, end, b.B);
      if (first == 0) {
        f.workspace += kc::encoder_backward_scratch_bytes(b.B, s.max_seq_len, s.padded_vocab_size) -
                       planned_encoder_scratch_bytes(b.B, s.max_seq_len);
      }
      const std::size_t ws0 = current(MemCategory::Workspace);
      MemoryTracker host;
      CudaStageModel model(s, first, end, b.B, 42, device);
      CHECK(current(MemCategory::Params) == f.params);
      CHECK(current(MemCategory::Grads) == f.grads);
      CHECK(current(MemCategory::Optimizer) == f.optimizer);
      CHECK(current(MemCategory::Workspace) - ws0 == f.workspace);
      CHECK(current(MemCategory::Activations) == 0);
      std::unique_ptr<Stash> stash = model.make_stash(b.B, Recompute::None);
      CHECK(current(MemCategory::Activations) == f.stash);
      std::vector<float> input(model.activation_words(b.B), 0.0f);
      kc::DeviceBuffer x(host, MemCategory::Activations, input.size() * sizeof(float));
      kc::DeviceBuffer dout(host, MemCategory::Activations, input.size() * sizeof(float));
      x.zero(device.stream());
      dout.zero(device.stream());
      model.forward(*stash, b.tokens.data(), x.as<float>(), b.targets.data(), 1.0f / N, true);
      model.backward_input(*stash, dout.as<float>());
      CHECK(current(MemCategory::Activations) == f.stash + f.kept_gradients);
      model.backward_weight(*stash);
      std::unique_ptr<Stash> full = model.make_stash(b.B, Recompute::Full);
      CHECK(current(MemCategory::Activations) == f.stash + f.kept_gradients + f.full_stash);
      CHECK(current(MemCategory::Workspace) - ws0 == f.workspace + f.recompute_workspace);
      std::unique_ptr<WordBuffer> message = model.make_message_buffer(model.activation_words(b.B));
      CHECK(current(MemCategory::Activations) == f.stash + f.kept_gradients + f.full_stash + f.message);
      // The kept set went back to the model's pool at W: the next micro-batch's I reuses it.
      std::unique_ptr<Stash> next = model.make_stash(b.B, Recompute::None);
      model.forward(*next, b.tokens.data(), x.as<float>(), b.targets.data(), 1.0f / N, true);
      model.backward_input(*next, dout.as<float>());
      CHECK(current(MemCategory::Activations) == 2 * f.stash + f.kept_gradients + f.full_stash + f.message);
      model.backward_weight(*next);
      std::unique_ptr<Stash> selective = model.make_stash(b.B, Recompute::Selective);
      CHECK(current(MemCategory::Activations) ==
            2 * f.stash + f.kept_gradients + f.full_stash + f.message + f.selective_stash);
      CHECK(current(MemCategory::Workspace) - ws0 ==
            f.workspace + f.recompute_workspace + f.selective_workspace);
      device.synchronize();
    }
  }
}
