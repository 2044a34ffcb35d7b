// pptrain_bench: single-process training throughput on this machine's CPU. Prints a
// markdown table (ms/step, tokens/s) for the GPT-2 124M shape and the demo model. Random
// tokens, the same train step as `pptrain train`; median over the timed steps after warm-up.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "comm/transport.h"
#include "core/rng.h"
#include "metrics/throughput.h"
#include "runtime/cpu_threads.h"
#include "runtime/pipeline_executor.h"
#include "runtime/training_plan.h"

namespace {

using namespace pptrain;

struct BenchCase {
  std::string name;
  GPT2Shape shape;
  int B, m;
};

struct BenchRow {
  double median_ms, tokens_per_s;
  std::size_t params;
};

BenchRow run_case(const BenchCase& c, int warmup, int steps) {
  Config config;
  config.model.vocab_size = c.shape.vocab_size;
  config.model.padded_vocab_size = c.shape.padded_vocab_size;
  config.model.seq_len = c.shape.max_seq_len;
  config.model.n_layer = c.shape.n_layer;
  config.model.n_head = c.shape.n_head;
  config.model.channels = c.shape.channels;
  config.pipeline.micro_batch_size = c.B;
  config.pipeline.micro_batches = c.m;
  config.training.steps = warmup + steps;
  const TrainingPlan plan = make_training_plan(config);
  SingleProcessTransport transport;
  MemoryTracker memory;
  PipelineExecutor executor(config, plan.shape, plan.lowered, plan.partition,
                            PipelineLayout::make(config, 0, 1), transport, memory);
  const int T = c.shape.max_seq_len;
  std::vector<double> ms;
  for (int step = 0; step < warmup + steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    executor.run_step(step, [&](int mb, int* inputs, int* targets) {
      Rng rng(stream_key(step, "bench", mb));
      for (int i = 0; i < c.B * T; ++i) {
        inputs[i] = static_cast<int>(rng.below(c.shape.vocab_size));
        targets[i] = static_cast<int>(rng.below(c.shape.vocab_size));
      }
    });
    executor.clear_timeline();
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (step >= warmup) ms.push_back(dt);
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const std::int64_t tokens = static_cast<std::int64_t>(c.m) * c.B * T;
  return {median, tokens_per_second(tokens, median / 1e3), c.shape.num_parameters()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pptrain_bench: single-process CPU training throughput"};
  int threads = 0, warmup = 1, steps = 5;
  std::vector<std::string> only;
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--steps", steps, "timed steps (median reported)")->capture_default_str();
  app.add_option("--only", only, "run only these cases (gpt2-124m, demo)");
  CLI11_PARSE(app, argc, argv);
  const int used_threads = configure_cpu_threads(threads, 1);

  const std::vector<BenchCase> cases = {
      {"gpt2-124m", GPT2Shape{50257, 50304, 64, 12, 12, 768}, 4, 1},
      {"demo", GPT2Shape{256, 256, 64, 4, 4, 128}, 4, 4},
  };
  fmt::print("| model | params | B x m x T | threads | ms/step (median of {}) | tokens/s |\n", steps);
  fmt::print("|---|---|---|---|---|---|\n");
  for (const BenchCase& c : cases) {
    if (!only.empty() && std::find(only.begin(), only.end(), c.name) == only.end()) continue;
    const BenchRow r = run_case(c, warmup, steps);
    fmt::print("| {} | {:.2f}M | {} x {} x {} | {} | {:.1f} | {:.0f} |\n", c.name, r.params / 1e6,
               c.B, c.m, c.shape.max_seq_len, used_threads, r.median_ms, r.tokens_per_s);
    std::fflush(stdout);
  }
  return 0;
}
