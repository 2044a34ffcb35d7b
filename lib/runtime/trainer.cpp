#include "runtime/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "core/error.h"
#include "data/prepare.h"
#include "io/model_files.h"
#include "kernels/cuda_device.h"
#include "model/compute_device.h"
#include "io/run_directory.h"
#include "io/safetensors.h"
#include "metrics/chrome_trace.h"
#include "metrics/logging.h"
#include "metrics/metrics_log.h"
#include "metrics/progress_line.h"
#include "metrics/throughput.h"
#include "runtime/checkpointing.h"
#include "runtime/cpu_threads.h"
#include "runtime/memory_plan.h"
#include "runtime/pipeline_executor.h"
#include "runtime/stop_signal.h"

namespace pptrain {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Steps whose timeline goes into trace-rank<N>.json: enough to see the steady state.
constexpr int kTracedSteps = 20;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Mean loss over the first `batches` validation windows (the same ones every time, so
// successive evaluations are comparable). Every rank of the pipeline takes part.
double evaluate(PipelineExecutor& executor, const TokenDataset& data, int batches, int B, int T) {
  const std::int64_t n = std::min<std::int64_t>(batches, data.num_eval_batches(B, T));
  std::vector<int> inputs(static_cast<std::size_t>(B) * T), targets(inputs.size());
  double sum = 0.0;
  for (std::int64_t k = 0; k < n; ++k) {
    data.fill_eval_batch(k, B, T, inputs.data(), targets.data());
    sum += executor.evaluate_batch(inputs.data(), targets.data());
  }
  return sum / static_cast<double>(n);
}

std::string sample_text(const std::vector<int>& tokens, int vocab_size) {
  if (vocab_size == kByteVocabSize) return decode_bytes(tokens);
  return fmt::format("{}", fmt::join(tokens, " "));
}

void write_trace(const std::string& run_dir, int rank, const std::vector<ExecutedAction>& timeline) {
  std::vector<TraceEvent> events;
  events.reserve(timeline.size());
  for (const ExecutedAction& a : timeline) {
    events.push_back({rank, a.compute ? 0 : 1, a.name, a.start_us, a.end_us - a.start_us,
                      a.compute ? "compute" : "wait", {}});
  }
  const fs::path path = fs::path(run_dir) / fmt::format("trace-rank{}.json", rank);
  std::ofstream out(path, std::ios::trunc);
  out << chrome_trace_json(events);
  PPT_CHECK(out.good(), "cannot write trace '{}'", path.string());
}

// "F=7.25,I=8.17,W=2.31": the median ms of each kind of compute action in `timeline`, in the
// form `pptrain plan --costs` reads (one rank's layers; v chunks per rank are summed back).
std::string median_action_times(const std::vector<ExecutedAction>& timeline, int virtual_stages) {
  std::map<char, std::vector<double>> ms;
  for (const ExecutedAction& a : timeline) {
    if (!a.compute) continue;
    const schedule::Action action = schedule::parse_action(a.name);
    const std::string_view code = schedule::kind_code(action.kind);
    ms[code.front()].push_back((a.end_us - a.start_us) / 1000.0 * virtual_stages);
  }
  std::string out;
  for (char kind : std::string("FBIW")) {
    auto it = ms.find(kind);
    if (it == ms.end()) continue;
    out += fmt::format("{}{}={:.3g}", out.empty() ? "" : ",", kind, median(it->second));
  }
  return out;
}

// One file per stage, tensors under their model names (wte is in both the first and the
// last stage's file), so runs with different layouts compare tensor by tensor.
void save_stage_parameters(PipelineExecutor& executor, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PPT_CHECK(!ec, "cannot create '{}': {}", dir, ec.message());
  for (int i = 0; i < executor.num_chunks(); ++i) {
    StageModel& model = executor.chunk_model(i);
    std::vector<float> params(model.num_params());
    model.read_params(params.data());
    std::vector<TensorRef> tensors;
    for (const ParamEntry& e : model.table().entries()) {
      tensors.push_back({e.spec.name, {e.spec.shape.begin(), e.spec.shape.end()}, params.data() + e.offset});
    }
    write_safetensors((fs::path(dir) / fmt::format("stage{}.safetensors", executor.chunk_stage(i))).string(),
                      tensors, {{"first_layer", std::to_string(model.first_layer())},
                                {"end_layer", std::to_string(model.end_layer())}});
  }
}

}  // namespace

TrainingData open_training_data(const Config& config, const GPT2Shape& shape) {
  TrainingData data{TokenDataset::open(config.data.train, shape.vocab_size, config.where("data.train")), {}};
  data.train.check_seq_len(shape.max_seq_len);
  if (!config.data.val.empty()) {
    data.val = TokenDataset::open(config.data.val, shape.vocab_size, config.where("data.val"));
    data.val->check_seq_len(shape.max_seq_len);
  }
  return data;
}

namespace {

// Every rank's measured peaks (the backend's tracker) against the memory plan, reported by
// rank 0: one line when all agree, one per rank that does not.
void report_memory_against_plan(PipelineExecutor& executor, const MemoryPlan& plan,
                                const MemoryTracker& tracked, const PipelineLayout& layout, bool reporter) {
  const int world = layout.pp * layout.dp;
  std::vector<double> peaks(static_cast<std::size_t>(world) * kMemCategories, 0.0);
  for (std::size_t c = 0; c < kMemCategories; ++c) {
    peaks[layout.world_rank * kMemCategories + c] = static_cast<double>(tracked.peak(static_cast<MemCategory>(c)));
  }
  executor.sum_over_world(peaks, "the memory report");  // bytes, exact in a double below 2^53
  if (!reporter) return;
  int differing = 0;
  for (int w = 0; w < world; ++w) {
    CategoryBytes measured{};
    for (std::size_t c = 0; c < kMemCategories; ++c) {
      measured[c] = static_cast<std::size_t>(peaks[w * kMemCategories + c]);
    }
    const int pp_rank = w / layout.dp;
    const std::string diff = memory_plan_difference(plan, pp_rank, measured);
    if (diff.empty()) continue;
    ++differing;
    spdlog::info("memory: rank {} (pipeline rank {}) differs from the plan: {}", w, pp_rank, diff);
  }
  if (differing == 0) {
    spdlog::info("memory: every rank's {} memory peaks are as planned (`pptrain plan` lists them)",
                 plan.gpu ? "GPU" : "host");
  }
}

// StepMetrics::peak_mib: every rank's tracker peak, the largest of each pipeline rank's
// replicas. Collective: every rank calls it for the same steps.
std::vector<double> peak_mib_per_pipeline_rank(PipelineExecutor& executor, const MemoryTracker& tracked,
                                               const PipelineLayout& layout) {
  std::vector<double> peaks(static_cast<std::size_t>(layout.pp) * layout.dp, 0.0);
  peaks[layout.world_rank] = static_cast<double>(tracked.peak_total());
  executor.sum_over_world(peaks, "the memory peaks of the step line");
  std::vector<double> out(layout.pp, 0.0);
  for (int w = 0; w < layout.pp * layout.dp; ++w) out[w / layout.dp] = std::max(out[w / layout.dp], peaks[w] / kMiB);
  return out;
}

}  // namespace

TrainSummary train(const Config& config, const TrainingPlan& plan, const TrainingData& data,
                   Transport& transport, int local_ranks, ComputeDevice* device,
                   const std::string& save_params_dir) {
  const int threads = configure_cpu_threads(config.runtime.threads, local_ranks);
  PPT_CHECK((config.runtime.device == "cuda") == (device != nullptr),
            "{}: device '{}' but {} GPU was set up", config.where("runtime.device"),
            config.runtime.device, device ? "a" : "no");
  const GPT2Shape& shape = plan.shape;
  const TrainingConfig& tc = config.training;
  const int B = config.pipeline.micro_batch_size, T = shape.max_seq_len;
  const int m = config.pipeline.micro_batches;
  const PipelineLayout layout = PipelineLayout::make(config, transport.rank(), transport.world_size());
  const bool reporter = transport.rank() == 0;
  install_stop_signal_handlers();

  // Before anything is allocated: a rank whose plan exceeds its GPU's free memory stops here
  // with the figures, instead of failing in cudaMalloc halfway through its first step.
  const MemoryPlan memory_plan = plan_memory(config, plan);
  const RankMemoryPlan& mine = memory_plan.ranks.at(layout.pp_rank);
  if (device != nullptr) {
    const std::size_t free = kernels::cuda::device_free_bytes(device->index());
    std::size_t allocated = 0;  // the device's own (cuBLASLt workspace), in the plan and in use
    for (std::size_t c = 0; c < kMemCategories; ++c) allocated += device->memory().current(static_cast<MemCategory>(c));
    const std::size_t to_allocate = mine.total() > allocated ? mine.total() - allocated : 0;
    if (to_allocate > free) {
      const std::string fixes = memory_fixes(config, free + allocated);  // free < to_allocate: no overflow
      PPT_THROW("{}: pipeline rank {} needs {:.2f} GiB of GPU memory by the memory plan (`pptrain "
                "plan` breaks it down), but GPU {} has {:.2f} GiB free; {}", config.source_path,
                layout.pp_rank, mine.total() / kGiB, device->index(), free / kGiB,
                fixes.empty() ? std::string("more pipeline.stages would spread it") : "fits with" + fixes);
    }
  }
  MemoryTracker memory;
  PipelineExecutor executor(config, shape, plan.lowered, plan.partition, layout, transport, memory, device);
  std::optional<std::string> resume_from;
  int first_step = 0;
  std::int64_t resumed_sequences = -1;  // the checkpoint's data position, if it recorded one
  executor.run_on_all_ranks([&] {
    resume_from = checkpoint_to_resume(config);
    if (resume_from) {
      const CheckpointManifest manifest = load_checkpoint(executor, *resume_from, plan);
      first_step = manifest.step;
      resumed_sequences = manifest.train_sequences;
    } else if (!config.model.init_from.empty()) {
      const ModelFile model = load_model_file(config.model.init_from);
      const std::string source = config.where("model.init_from") + ": " + config.model.init_from;
      check_model_tensors(shape, model.tensors, source);
      executor.load_parameters(model.tensors, source);
    }
  }, "the checkpoint-loading agreement");

  TrainSummary summary;
  summary.run_dir = run_directory_path(config);
  std::optional<MetricsLog> metrics;
  if (reporter) {
    create_run_directory(config);
    // A resumed run continues the log and the metrics of the run it resumes.
    add_log_file((fs::path(summary.run_dir) / "log.txt").string(), resume_from.has_value());
    metrics.emplace((fs::path(summary.run_dir) / "metrics.jsonl").string(), resume_from ? first_step : -1);
  }
  spdlog::info("model: {} layers, {} heads, {} channels, vocab {} (padded {}), seq {}: {:.2f}M parameters",
               shape.n_layer, shape.n_head, shape.channels, shape.vocab_size,
               shape.padded_vocab_size, T, shape.num_parameters() / 1e6);
  spdlog::info("pipeline: {} on {} rank(s) x {} replica(s); {} thread(s) per rank",
               schedule::describe(plan.lowered), layout.pp, layout.dp, threads);
  if (layout.dp > 1) {
    spdlog::info("data parallel: gradients summed over {} replicas; rank 0's {}", layout.dp,
                 executor.grad_reduction_summary());
  }
  spdlog::info("compute: {}", device ? device->description() : std::string("cpu fp32"));
  const RankMemoryPlan& largest = largest_rank(memory_plan);
  spdlog::info("memory plan: {:.1f} MiB of {} memory on the largest rank (pipeline rank {}); "
               "`pptrain plan` breaks it down", largest.total() / kMiB,
               memory_plan.gpu ? "GPU" : "host", largest.pp_rank);
  if (device) {
    for (const std::string& line : device->tuning_report()) spdlog::info("{}", line);
  }
  // Every replica's every micro-batch reads distinct windows of one shuffled epoch order
  // (TokenDataset::fill_train_batch).
  const std::int64_t sequences_per_step = static_cast<std::int64_t>(layout.dp) * m * B;
  spdlog::info("train: {} tokens in {} shard(s){}; global batch {} x {} x {} x {} tokens; "
               "an epoch ({} windows of {}) is {:.1f} steps",
               data.train.num_tokens(), data.train.shards().size(),
               data.val ? fmt::format(", val: {} tokens", data.val->num_tokens()) : std::string(),
               layout.dp, m, B, T, data.train.num_windows(T), T,
               static_cast<double>(data.train.num_windows(T)) / sequences_per_step);
  spdlog::info("run directory: {}", summary.run_dir);
  // The data sampler's position: sequences read so far, kept by checkpoints, so a run resumed
  // with another global batch (more replicas, say) reads on where the epoch order stopped.
  std::int64_t train_sequences = resumed_sequences >= 0 ? resumed_sequences : first_step * sequences_per_step;
  if (resume_from) {
    spdlog::info("resumed from {} after step {}; training data goes on at sequence {} (epoch {}){}",
                 *resume_from, first_step, train_sequences, train_sequences / data.train.num_windows(T),
                 resumed_sequences >= 0 ? "" : " (the checkpoint did not record it: step x sequences per step)");
  }
  if (!resume_from && !config.model.init_from.empty()) {
    spdlog::info("initial weights from {}", config.model.init_from);
  }
  if (transport.world_size() == 1 && config.runtime.threads == 0 &&
      usable_cores() < static_cast<int>(std::thread::hardware_concurrency())) {
    spdlog::info("note: the launcher bound this rank to {} of {} cores (mpirun --bind-to none "
                 "lets one rank use them all)", usable_cores(), std::thread::hardware_concurrency());
  }

  if (data.val && !resume_from) {
    summary.first_val_loss = evaluate(executor, *data.val, tc.val_batches, B, T);
    spdlog::info("step 0 | val {:.4f}", *summary.first_val_loss);
  }

  const std::int64_t tokens_per_step = static_cast<std::int64_t>(layout.dp) * m * B * T;
  const double flops_per_token =
      model_flops_per_token(static_cast<double>(shape.num_parameters()), shape.n_layer, shape.channels, T);
  const bool checkpointing = config.checkpoint.every > 0;
  std::optional<std::string> last_checkpoint = resume_from;
  int nonfinite_in_a_row = 0;
  ProgressLine progress;
  const auto start = Clock::now();
  summary.steps = first_step;
  for (int step = first_step; step < tc.steps; ++step) {
    const auto t0 = Clock::now();
    const StepReport r = executor.run_step(step, [&](int global_mb, int* inputs, int* targets) {
      data.train.fill_train_batch(tc.seed, train_sequences, sequences_per_step, std::int64_t{global_mb} * B, B,
                                  T, inputs, targets);
    });
    train_sequences += sequences_per_step;  // a skipped step read its data too
    const double step_s = seconds_since(t0);
    if (!config.logging.trace || step >= kTracedSteps) executor.clear_timeline();
    if (config.logging.trace && step + 1 == std::min(kTracedSteps, tc.steps)) {
      write_trace(summary.run_dir, transport.rank(), executor.timeline());
      if (reporter) {
        spdlog::info("action times of rank 0 over the traced steps (median ms): {} (pptrain plan --costs takes them)",
                     median_action_times(executor.timeline(), config.pipeline.virtual_stages));
      }
    }
    summary.steps = step + 1;
    summary.final_loss = r.loss;

    if (r.skipped) {
      ++nonfinite_in_a_row;
      progress.clear();
      if (reporter) {
        spdlog::warn("step {}: loss {} / grad norm {} not finite: update skipped ({} in a row, stop at {})",
                     step + 1, r.loss, r.grad_norm, nonfinite_in_a_row, tc.max_nonfinite_steps);
      }
      // Every rank sees the same reduced loss and norm, so all stop here together.
      if (nonfinite_in_a_row >= tc.max_nonfinite_steps) {
        PPT_THROW_ALL_RANKS(
                "the loss or grad norm was not finite for {} steps in a row (steps {}-{}), so training "
                "stopped (training.max_nonfinite_steps); {}; try a lower training.lr",
                nonfinite_in_a_row, step + 2 - nonfinite_in_a_row, step + 1,
                last_checkpoint ? "the last good checkpoint is " + *last_checkpoint
                                : std::string("no checkpoint was written"));
      }
    } else {
      nonfinite_in_a_row = 0;
    }

    StepMetrics sm;
    sm.step = step + 1;
    sm.loss = r.loss;
    sm.lr = r.lr;
    sm.grad_norm = r.grad_norm;
    sm.step_ms = step_s * 1e3;
    sm.tokens_per_s = tokens_per_second(tokens_per_step, step_s);
    if (device != nullptr) {  // per GPU: the job's tokens/s shared by its ranks' GPUs
      sm.mfu_pct = 100.0 * mfu(sm.tokens_per_s / transport.world_size(), flops_per_token);
    }
    // One stage too: there the "bubble" is the share of the step its compute sat idle (host
    // work, data loading), which on a GPU rank says whether the host keeps the GPU fed.
    for (double b : r.pipeline_bubbles) sm.bubble_pct.push_back(100.0 * b);
    const bool last = step + 1 == tc.steps;
    if (data.val && (last || (tc.val_every > 0 && sm.step % tc.val_every == 0))) {
      sm.val_loss = evaluate(executor, *data.val, tc.val_batches, B, T);
      summary.final_val_loss = sm.val_loss;
    }
    const double eta = seconds_since(start) / (sm.step - first_step) * (tc.steps - sm.step);
    if (last || sm.step % config.logging.every == 0 || sm.val_loss) {  // the same on every rank
      sm.peak_mib = peak_mib_per_pipeline_rank(executor, device ? device->memory() : memory, layout);
      progress.clear();
      spdlog::info(format_step_line(sm, tc.steps, eta));
      if (metrics) metrics->write(sm);
    } else if (reporter) {
      progress.update(sm.step, tc.steps, eta);
    }

    // Every rank checks for SIGTERM/SIGUSR1 after every step and they agree, so all stop at
    // the same step boundary with the same checkpoint.
    std::vector<double> votes = stop_signal_votes();
    executor.sum_over_world(votes, "the stop-signal agreement");
    const int signal = agreed_stop_signal(votes);
    const bool stop = signal != 0;
    const bool due = checkpointing && !r.skipped && (sm.step % config.checkpoint.every == 0 || last);
    if (due || stop) {
      last_checkpoint = save_checkpoint(executor, config, plan, layout, transport, sm.step, train_sequences);
      spdlog::info("checkpoint: {}", *last_checkpoint);
    }
    if (stop) {
      progress.clear();
      spdlog::info("stopped by {} after step {}: resume with the same command and "
                   "--set checkpoint.resume=auto (or checkpoint.resume: {})",
                   signal_name(signal), sm.step,
                   *last_checkpoint);
      summary.stopped_by_signal = true;
      return summary;
    }
  }
  progress.clear();
  spdlog::info("trained {} steps in {}; host memory peaks on rank 0: {}", summary.steps - first_step,
               format_duration(seconds_since(start)), describe_memory_peaks(memory));
  if (device != nullptr) {
    spdlog::info("GPU memory peaks on rank 0 ({}): {}", device->description(),
                 describe_memory_peaks(device->memory()));
  }
  report_memory_against_plan(executor, memory_plan, device ? device->memory() : memory,
                             layout, reporter);

  // Replicas hold identical parameters: the first one writes them.
  if (!save_params_dir.empty() && layout.dp_rank == 0) save_stage_parameters(executor, save_params_dir);
  if (tc.sample_tokens > 0) {
    const TokenDataset& source = data.val ? *data.val : data.train;
    std::vector<int> window(static_cast<std::size_t>(B) * T), unused(window.size());
    source.fill_eval_batch(0, B, T, window.data(), unused.data());
    const std::vector<int> prompt(window.begin(), window.begin() + std::max(1, T / 4));
    const std::vector<int> sample = executor.generate(prompt, tc.sample_tokens, tc.seed);
    spdlog::info("sample (prompt: the first {} tokens of a {} window):\n{}", prompt.size(),
                 data.val ? "validation" : "training", sample_text(sample, shape.vocab_size));
  }
  return summary;
}

}  // namespace pptrain
