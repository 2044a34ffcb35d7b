// The typed run configuration (DESIGN.md section 10). Every field has a default; the YAML
// loader (config_loader.h) fills these structs, checks types, ranges and cross-field rules,
// and names file:line:col and the key in every error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pptrain {

struct ModelConfig {
  std::string arch = "gpt2";
  int vocab_size = 256;         // real tokens; targets lie in [0, vocab_size)
  int padded_vocab_size = 0;    // 0 = vocab_size rounded up to a multiple of 128 (llm.c)
  int seq_len = 64;             // max sequence length T (wpe rows)
  int n_layer = 4;
  int n_head = 4;
  int channels = 128;           // C; must be divisible by n_head
  std::string init_from;        // start from these weights: llm.c file, HF export or checkpoint
};

struct PipelineConfig {
  int stages = 1;
  std::string schedule = "1f1b";  // gpipe | 1f1b | interleaved | interleaved-zb | zb-h1 | zbv | csv:<path>
  // Which rank holds which stage (schedule/schedule.h): auto (the schedule's own: vee for
  // zbv, loop for the others and for csv:), loop or vee (a csv: schedule written for a V).
  std::string placement = "auto";
  int virtual_stages = 1;
  int micro_batches = 1;          // m per step per replica
  int micro_batch_size = 4;       // B sequences per micro-batch
  std::string partition = "uniform";  // uniform | parameters | flops | profile | manual
  std::vector<int> manual_layers;     // layers per stage for partition: manual
  // partition: profile: each layer's forward + backward time (ms), embedding, blocks, head;
  // measured at start-up when not given (runtime/layer_profile.h).
  std::vector<double> layer_costs;
  std::string recompute = "none";     // none | selective | full (model/stage_model.h: Recompute)
  std::string offload = "none";       // none (cpu: reserved, refused)
  // Per pipeline rank, in GiB of the backend's memory (the GPU's for runtime.device cuda) as
  // the memory plan counts it (runtime/memory_plan.h); 0: no limit. The cost-based partitions
  // pick the best split that fits (virtual_stages 1); every plan over it is refused.
  double memory_limit_gib = 0.0;
};

struct ParallelConfig {
  int data = 1;
  // With data > 1, each stage's gradients are summed over its replicas in buckets of
  // consecutive layers, each started as the step's last backward of the stage completes it,
  // while the layers below still run (runtime/grad_reduction.h); false: all after the step.
  bool overlap_grad_reduce = true;
  double grad_bucket_mib = 25.0;  // a bucket closes once its layers' fp32 gradients reach this
};

struct TrainingConfig {
  int steps = 100;
  double lr = 6e-4;
  double min_lr = 0.0;          // cosine decays from lr to min_lr
  std::string lr_schedule = "cosine";  // cosine | linear | constant
  int warmup_steps = 0;
  // The last decay_steps steps decay lr to min_lr, held at lr before them (warmup-stable-decay);
  // 0: every step after the warmup decays.
  int decay_steps = 0;
  double weight_decay = 0.1;
  double grad_clip = 1.0;       // 0 disables clipping
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  std::uint64_t seed = 1337;
  int val_every = 0;            // 0 = only at the end
  int val_batches = 8;          // micro-batches of validation per evaluation
  int sample_tokens = 64;       // generated at the end; 0 = none
  int max_nonfinite_steps = 5;  // skipped steps (non-finite loss or grad norm) in a row before stopping
};

struct DataConfig {
  std::string train;  // glob of llm.c token shards
  std::string val;    // glob; empty = no validation
};

struct RuntimeConfig {
  std::string device = "cpu";      // cpu | cuda
  std::string precision = "fp32";  // fp32 | bf16
  std::string comm = "auto";       // auto | nccl | mpi
  int threads = 0;                 // 0 = cores / local ranks, at least 1
  double timeout_s = 300.0;
};

struct CheckpointConfig {
  std::string dir;        // empty = <run dir>/checkpoints
  int every = 0;          // 0 = never
  int keep = 2;
  std::string resume = "none";  // none | auto | <path>
};

struct LoggingConfig {
  std::string dir = "runs";
  std::string name;       // empty = config file stem
  int every = 1;
  bool trace = false;
};

struct Config {
  ModelConfig model;
  PipelineConfig pipeline;
  ParallelConfig parallel;
  TrainingConfig training;
  DataConfig data;
  RuntimeConfig runtime;
  CheckpointConfig checkpoint;
  LoggingConfig logging;

  std::string source_path;  // the YAML file it came from ("" when built in code)
  // Where each given key came from, so later checks (data reader, launcher) can point at
  // it: "data.train" -> "configs/demo.yaml:12:10" (1-based) or "--set data.train=x/*.bin".
  // Keys left at their default are absent.
  std::map<std::string, std::string> key_origin;
  // "configs/demo.yaml:12:10: data.train", or "configs/demo.yaml: data.train (default)";
  // an error about the key is where(key) + ": " + what is wrong.
  std::string where(const std::string& key) const;

  int padded_vocab() const {
    return model.padded_vocab_size > 0 ? model.padded_vocab_size
                                       : (model.vocab_size + 127) / 128 * 128;
  }
};

}  // namespace pptrain
