// Ranges and cross-field rules of one Config (DESIGN.md section 10), run before any rank
// allocates. Each failure starts at the origin of a key the user gave (Config::key_origin),
// so "must be >= 1" points at the line or --set to change.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "config/config_fields.h"
#include "config/config_loader.h"
#include "core/error.h"

namespace pptrain {
namespace {

// "file:line:col: key" of the first of keys the user gave (the one to edit); when all are
// defaults, "file: key" with the first.
std::string at(const Config& c, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    auto it = c.key_origin.find(key);
    if (it != c.key_origin.end()) return fmt::format("{}: {}", it->second, key);
  }
  return fmt::format("{}: {}", c.source_path.empty() ? "<built in code>" : c.source_path,
                     *keys.begin());
}

[[noreturn]] void fail(const Config& c, std::initializer_list<const char*> keys,
                       const std::string& what) {
  PPT_THROW("{}: {}", at(c, keys), what);
}

// "4" or "4, the default" (used inside parentheses): a cross-field message shows which
// side the user actually set.
std::string value_of(const Config& c, const std::string& key) {
  Config copy = c;
  for (const ConfigField& f : config_fields(copy)) {
    if (f.key() != key) continue;
    std::string text = config_field_text(f.ref);
    return c.key_origin.count(key) ? text : text + ", the default";
  }
  return "?";
}

template <class T>
void at_least(const Config& c, const char* key, T value, T min) {
  if (!(value >= min)) fail(c, {key}, fmt::format("must be >= {}, got {}", min, value));
}

void positive(const Config& c, const char* key, double value) {
  if (!(value > 0)) fail(c, {key}, fmt::format("must be > 0, got {}", value));
}

void one_of(const Config& c, const char* key, const std::string& value,
            const std::vector<std::string>& allowed) {
  for (const std::string& a : allowed) {
    if (value == a) return;
  }
  fail(c, {key}, fmt::format("expected one of {}; got '{}'", fmt::join(allowed, ", "), value));
}

void check_model(const Config& c) {
  const ModelConfig& m = c.model;
  one_of(c, "model.arch", m.arch, {"gpt2"});
  at_least(c, "model.vocab_size", m.vocab_size, 1);
  if (m.padded_vocab_size != 0 && m.padded_vocab_size < m.vocab_size) {
    fail(c, {"model.padded_vocab_size"},
         fmt::format("must be 0 (model.vocab_size rounded up to a multiple of 128) or >= "
                     "model.vocab_size ({}), got {}",
                     value_of(c, "model.vocab_size"), m.padded_vocab_size));
  }
  at_least(c, "model.seq_len", m.seq_len, 1);
  at_least(c, "model.n_layer", m.n_layer, 1);
  at_least(c, "model.n_head", m.n_head, 1);
  at_least(c, "model.channels", m.channels, 1);
  if (m.channels % m.n_head != 0) {
    fail(c, {"model.channels", "model.n_head"},
         fmt::format("must be divisible by model.n_head ({}), got {}", value_of(c, "model.n_head"),
                     m.channels));
  }
}

void check_pipeline(const Config& c) {
  const PipelineConfig& p = c.pipeline;
  at_least(c, "pipeline.stages", p.stages, 1);
  bool csv = p.schedule.rfind("csv:", 0) == 0 && p.schedule.size() > 4;
  if (!csv) {
    one_of(c, "pipeline.schedule", p.schedule,
           {"gpipe", "1f1b", "interleaved", "interleaved-zb", "zb-h1", "zbv", "csv:<path>"});
  }
  at_least(c, "pipeline.virtual_stages", p.virtual_stages, 1);
  at_least(c, "pipeline.micro_batches", p.micro_batches, 1);
  at_least(c, "pipeline.micro_batch_size", p.micro_batch_size, 1);
  one_of(c, "pipeline.partition", p.partition, {"uniform", "parameters", "flops", "profile", "manual"});
  one_of(c, "pipeline.recompute", p.recompute, {"none", "selective", "full"});
  if (p.offload == "cpu") {
    fail(c, {"pipeline.offload"}, "cpu is not implemented yet; use none, or pipeline.recompute: "
         "full to keep only one (B,T,C) tensor per block and micro-batch");
  }
  one_of(c, "pipeline.offload", p.offload, {"none"});
  at_least(c, "pipeline.memory_limit_gib", p.memory_limit_gib, 0.0);
  at_least(c, "parallel.data", c.parallel.data, 1);
  at_least(c, "parallel.grad_bucket_mib", c.parallel.grad_bucket_mib, 0.0);
}

void check_training(const Config& c) {
  const TrainingConfig& t = c.training;
  at_least(c, "training.steps", t.steps, 1);
  positive(c, "training.lr", t.lr);
  at_least(c, "training.min_lr", t.min_lr, 0.0);
  if (t.min_lr > t.lr) {
    fail(c, {"training.min_lr", "training.lr"},
         fmt::format("must be <= training.lr ({}), got {}", value_of(c, "training.lr"), t.min_lr));
  }
  one_of(c, "training.lr_schedule", t.lr_schedule, {"cosine", "linear", "constant"});
  at_least(c, "training.warmup_steps", t.warmup_steps, 0);
  at_least(c, "training.decay_steps", t.decay_steps, 0);
  if (t.decay_steps > 0 && t.lr_schedule == "constant") {
    fail(c, {"training.decay_steps", "training.lr_schedule"},
         "a constant schedule does not decay: use lr_schedule cosine or linear, or decay_steps 0");
  }
  if (t.decay_steps > 0 && static_cast<long long>(t.warmup_steps) + t.decay_steps > t.steps) {
    fail(c, {"training.decay_steps", "training.warmup_steps", "training.steps"},
         fmt::format("warmup ({}) and decay ({}) steps exceed training.steps ({})", t.warmup_steps,
                     t.decay_steps, t.steps));
  }
  at_least(c, "training.weight_decay", t.weight_decay, 0.0);
  at_least(c, "training.grad_clip", t.grad_clip, 0.0);
  for (auto [key, beta] : {std::pair{"training.beta1", t.beta1}, {"training.beta2", t.beta2}}) {
    if (!(beta >= 0 && beta < 1)) fail(c, {key}, fmt::format("must be in [0, 1), got {}", beta));
  }
  positive(c, "training.eps", t.eps);
  at_least(c, "training.val_every", t.val_every, 0);
  at_least(c, "training.val_batches", t.val_batches, 1);
  at_least(c, "training.sample_tokens", t.sample_tokens, 0);
  at_least(c, "training.max_nonfinite_steps", t.max_nonfinite_steps, 1);
}

void check_run(const Config& c) {
  // Whether the shards exist is the data reader's check; it names config.where("data.train").
  if (c.data.train.empty()) fail(c, {"data.train"}, "required (a glob of token shards)");
  const RuntimeConfig& r = c.runtime;
  one_of(c, "runtime.device", r.device, {"cpu", "cuda"});
  one_of(c, "runtime.precision", r.precision, {"fp32", "bf16"});
  one_of(c, "runtime.comm", r.comm, {"auto", "nccl", "mpi"});
  at_least(c, "runtime.threads", r.threads, 0);
  positive(c, "runtime.timeout_s", r.timeout_s);
  const CheckpointConfig& k = c.checkpoint;
  at_least(c, "checkpoint.every", k.every, 0);
  at_least(c, "checkpoint.keep", k.keep, 1);
  if (k.resume.empty()) fail(c, {"checkpoint.resume"}, "expected none, auto or a checkpoint path");
  const LoggingConfig& l = c.logging;
  if (l.dir.empty()) fail(c, {"logging.dir"}, "must not be empty (runs are written under it)");
  if (l.name.find('/') != std::string::npos) {
    fail(c, {"logging.name"}, fmt::format("must be a plain name (the run directory is "
                                          "<logging.dir>/<name>), got '{}'", l.name));
  }
  at_least(c, "logging.every", l.every, 1);
}

// Rules that tie keys of different sections together.
void check_cross(const Config& c) {
  const PipelineConfig& p = c.pipeline;
  // Interleaving gives each rank v model chunks; the partitioner needs a block per chunk.
  long long chunks = static_cast<long long>(p.stages) * p.virtual_stages;
  if (c.model.n_layer < chunks) {
    std::string need = p.virtual_stages == 1
        ? fmt::format("pipeline.stages ({}): each stage needs at least one transformer block",
                      value_of(c, "pipeline.stages"))
        : fmt::format("pipeline.stages x pipeline.virtual_stages ({} x {} = {}): each model "
                      "chunk needs at least one transformer block", p.stages, p.virtual_stages,
                      chunks);
    fail(c, {"model.n_layer", "pipeline.stages", "pipeline.virtual_stages"},
         fmt::format("model.n_layer ({}) must be >= {}", value_of(c, "model.n_layer"), need));
  }
  if (p.virtual_stages > 1 && (p.schedule == "gpipe" || p.schedule == "1f1b" || p.schedule == "zb-h1")) {
    fail(c, {"pipeline.virtual_stages", "pipeline.schedule"},
         fmt::format("virtual stages are used only by schedules interleaved, interleaved-zb and zbv "
                     "(or a csv: schedule), but pipeline.schedule is '{}'", p.schedule));
  }
  one_of(c, "pipeline.placement", p.placement, {"auto", "loop", "vee"});
  const bool csv = p.schedule.rfind("csv:", 0) == 0;
  if (!csv && p.placement != "auto" && p.placement != (p.schedule == "zbv" ? "vee" : "loop")) {
    fail(c, {"pipeline.placement", "pipeline.schedule"},
         fmt::format("schedule {} places its stages in {}; pipeline.placement chooses only for a "
                     "csv: schedule", p.schedule, p.schedule == "zbv" ? "a V (vee)" : "a loop"));
  }
  if (csv && p.placement == "vee" && p.virtual_stages != 2) {
    fail(c, {"pipeline.placement", "pipeline.virtual_stages"},
         fmt::format("the V placement puts two stages on each rank; set pipeline.virtual_stages: 2 "
                     "(it is {})", p.virtual_stages));
  }
  if (p.schedule == "zbv" && p.virtual_stages != 2) {
    fail(c, {"pipeline.virtual_stages", "pipeline.schedule"},
         fmt::format("schedule zbv runs two model chunks per rank in a V; set "
                     "pipeline.virtual_stages: 2 (it is {})", p.virtual_stages));
  }
  if (p.partition == "manual") {
    // Layers are embedding, n_layer blocks and the LM head, split contiguously per chunk.
    const char* what = p.virtual_stages == 1 ? "stage" : "model chunk";
    if (static_cast<long long>(p.manual_layers.size()) != chunks) {
      fail(c, {"pipeline.manual_layers", "pipeline.partition"},
           fmt::format("partition manual needs one entry per {} ({}), got {} entries", what,
                       chunks, p.manual_layers.size()));
    }
    long long sum = 0;
    for (std::size_t i = 0; i < p.manual_layers.size(); ++i) {
      if (p.manual_layers[i] < 1) {
        fail(c, {"pipeline.manual_layers"},
             fmt::format("entry {} is {}; every {} needs at least one layer", i,
                         p.manual_layers[i], what));
      }
      sum += p.manual_layers[i];
    }
    if (sum != c.model.n_layer + 2) {
      fail(c, {"pipeline.manual_layers", "model.n_layer"},
           fmt::format("entries sum to {}, but the model has model.n_layer + 2 = {} layers "
                       "(the embedding and the LM head count as layers)", sum,
                       c.model.n_layer + 2));
    }
  } else if (!p.manual_layers.empty()) {
    fail(c, {"pipeline.manual_layers"},
         fmt::format("only used with pipeline.partition manual, but partition is '{}'",
                     p.partition));
  }
  if (p.partition == "profile" && !p.layer_costs.empty()) {
    const int layers = c.model.n_layer + 2;
    if (static_cast<int>(p.layer_costs.size()) != layers) {
      fail(c, {"pipeline.layer_costs", "model.n_layer"},
           fmt::format("{} entries, but the model has model.n_layer + 2 = {} layers (the "
                       "embedding, the blocks and the LM head, in order)", p.layer_costs.size(), layers));
    }
    for (std::size_t i = 0; i < p.layer_costs.size(); ++i) {
      if (!(p.layer_costs[i] >= 0.0)) {
        fail(c, {"pipeline.layer_costs"}, fmt::format("entry {} is {}; costs are times, >= 0", i,
                                                      p.layer_costs[i]));
      }
    }
  } else if (!p.layer_costs.empty()) {
    fail(c, {"pipeline.layer_costs"},
         fmt::format("only used with pipeline.partition profile, but partition is '{}'", p.partition));
  }
  const std::string& device = c.runtime.device;
  if (c.runtime.precision == "bf16" && device != "cuda") {
    fail(c, {"runtime.precision", "runtime.device"},
         "bf16 needs runtime.device cuda (the CPU kernels are fp32 references)");
  }
  if (c.runtime.comm == "nccl" && device != "cuda") {
    fail(c, {"runtime.comm", "runtime.device"},
         "nccl needs runtime.device cuda; use mpi or auto on the CPU");
  }
}

}  // namespace

void check_config(const Config& config) {
  check_model(config);
  check_pipeline(config);
  check_training(config);
  check_run(config);
  check_cross(config);
}

void check_config_for_world(const Config& config, int world_size) {
  PPT_CHECK(world_size >= 1, "world size must be >= 1, got {}", world_size);
  long long ranks = static_cast<long long>(config.pipeline.stages) * config.parallel.data;
  if (ranks != world_size) {
    fail(config, {"pipeline.stages", "parallel.data"},
         fmt::format("pipeline.stages ({}) x parallel.data ({}) = {} must equal the number "
                     "of ranks, but the job has {} rank{}", value_of(config, "pipeline.stages"),
                     value_of(config, "parallel.data"), ranks, world_size,
                     world_size == 1 ? "" : "s"));
  }
}

}  // namespace pptrain
