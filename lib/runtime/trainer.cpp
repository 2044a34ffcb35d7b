#include "runtime/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "io/run_directory.h"
#include "metrics/logging.h"
#include "metrics/metrics_log.h"
#include "metrics/progress_line.h"
#include "metrics/throughput.h"
#include "model/stage_model.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/cpu_threads.h"
#include "runtime/generate.h"
#include "runtime/train_step.h"

namespace pptrain {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Mean loss over the first `batches` validation windows (the same ones every time, so
// successive evaluations are comparable).
double evaluate(StageModel& model, Stash& stash, const TokenDataset& data, int batches, int B,
                int T) {
  const std::int64_t n = std::min<std::int64_t>(batches, data.num_eval_batches(B, T));
  std::vector<int> inputs(static_cast<std::size_t>(B) * T), targets(inputs.size());
  double sum = 0.0;
  for (std::int64_t k = 0; k < n; ++k) {
    data.fill_eval_batch(k, B, T, inputs.data(), targets.data());
    sum += model.forward(stash, inputs.data(), nullptr, targets.data(), 0.0f, false);
  }
  return sum / static_cast<double>(n);
}

std::string sample_text(const std::vector<int>& tokens, int vocab_size) {
  if (vocab_size == kByteVocabSize) return decode_bytes(tokens);
  return fmt::format("{}", fmt::join(tokens, " "));
}

}  // namespace

TrainSummary train_single_process(const Config& config, int local_ranks) {
  const int threads = configure_cpu_threads(config.runtime.threads, local_ranks);
  PPT_CHECK(config.runtime.device == "cpu",
            "{}: device '{}' is not available in this build yet (use cpu)",
            config.where("runtime.device"), config.runtime.device);
  const GPT2Shape shape = GPT2Shape::from_config(config);
  const TrainingConfig& tc = config.training;
  const int B = config.pipeline.micro_batch_size, T = shape.max_seq_len;
  const int m = config.pipeline.micro_batches;

  // Open the data before allocating the model: a bad shard fails fast.
  const TokenDataset train = TokenDataset::open(config.data.train, shape.vocab_size,
                                                config.where("data.train"));
  train.check_seq_len(T);
  std::optional<TokenDataset> val;
  if (!config.data.val.empty()) {
    val = TokenDataset::open(config.data.val, shape.vocab_size, config.where("data.val"));
    val->check_seq_len(T);
  }

  TrainSummary summary;
  summary.run_dir = create_run_directory(config);
  add_log_file((std::filesystem::path(summary.run_dir) / "log.txt").string());
  MetricsLog metrics((std::filesystem::path(summary.run_dir) / "metrics.jsonl").string());

  MemoryTracker memory;
  StageModel model(shape, 0, shape.num_layers(), B, tc.seed, memory);
  AdamWOptimizer optimizer(model.table(), tc, memory);
  auto stash = model.make_stash(B);
  spdlog::info("model: {} layers, {} heads, {} channels, vocab {} (padded {}), seq {}: {:.2f}M parameters",
               shape.n_layer, shape.n_head, shape.channels, shape.vocab_size,
               shape.padded_vocab_size, T, shape.num_parameters() / 1e6);
  spdlog::info("train: {} tokens in {} shard(s){}; batch {} x {} micro-batches x {} tokens; {} thread(s)",
               train.num_tokens(), train.shards().size(),
               val ? fmt::format(", val: {} tokens", val->num_tokens()) : std::string(), B, m, T,
               threads);
  spdlog::info("run directory: {}", summary.run_dir);

  if (val) {
    summary.first_val_loss = evaluate(model, *stash, *val, tc.val_batches, B, T);
    spdlog::info("step 0 | val {:.4f}", *summary.first_val_loss);
  }

  const std::int64_t tokens_per_step = static_cast<std::int64_t>(m) * B * T;
  ProgressLine progress;
  const auto start = Clock::now();
  for (int step = 0; step < tc.steps; ++step) {
    const auto t0 = Clock::now();
    const StepResult r = train_step_whole_model(
        model, *stash, optimizer, tc, step, m, [&](int mb, int* inputs, int* targets) {
          train.fill_train_batch(tc.seed, step, 0, mb, B, T, inputs, targets);
        });
    const double step_s = seconds_since(t0);

    StepMetrics sm;
    sm.step = step + 1;
    sm.loss = r.loss;
    sm.lr = r.lr;
    sm.grad_norm = r.grad_norm;
    sm.step_ms = step_s * 1e3;
    sm.tokens_per_s = tokens_per_second(tokens_per_step, step_s);
    const bool last = step + 1 == tc.steps;
    if (val && (last || (tc.val_every > 0 && sm.step % tc.val_every == 0))) {
      sm.val_loss = evaluate(model, *stash, *val, tc.val_batches, B, T);
      summary.final_val_loss = sm.val_loss;
    }
    const double eta = seconds_since(start) / sm.step * (tc.steps - sm.step);
    if (last || sm.step % config.logging.every == 0 || sm.val_loss) {
      progress.clear();
      spdlog::info(format_step_line(sm, tc.steps, eta));
      metrics.write(sm);
    } else {
      progress.update(sm.step, tc.steps, eta);
    }
    summary.final_loss = r.loss;
    summary.steps = sm.step;
    PPT_CHECK(std::isfinite(r.loss), "loss is {} at step {}: training diverged (lower training.lr?)",
              r.loss, sm.step);
  }
  progress.clear();
  spdlog::info("trained {} steps in {}; host memory peaks: {}", summary.steps,
               format_duration(seconds_since(start)), describe_memory_peaks(memory));

  if (tc.sample_tokens > 0) {
    const TokenDataset& source = val ? *val : train;
    std::vector<int> window(static_cast<std::size_t>(B) * T), unused(window.size());
    source.fill_eval_batch(0, B, T, window.data(), unused.data());
    const std::vector<int> prompt(window.begin(), window.begin() + std::max(1, T / 4));
    const std::vector<int> sample = generate_tokens(model, prompt, tc.sample_tokens, tc.seed);
    spdlog::info("sample (prompt: the first {} tokens of a {} window):\n{}", prompt.size(),
                 val ? "validation" : "training", sample_text(sample, shape.vocab_size));
  }
  return summary;
}

}  // namespace pptrain
