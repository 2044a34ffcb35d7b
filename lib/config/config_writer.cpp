// The key table, Config::where and config_to_yaml: everything that reads a Config back out.
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join moves here in fmt 11

#include "config/config_fields.h"
#include "config/config_loader.h"

namespace pptrain {

std::vector<ConfigField> config_fields(Config& c) {
  auto& m = c.model;
  auto& p = c.pipeline;
  auto& t = c.training;
  auto& r = c.runtime;
  auto& k = c.checkpoint;
  auto& l = c.logging;
  return {
      {"model", "arch", &m.arch},
      {"model", "vocab_size", &m.vocab_size},
      {"model", "padded_vocab_size", &m.padded_vocab_size},
      {"model", "seq_len", &m.seq_len},
      {"model", "n_layer", &m.n_layer},
      {"model", "n_head", &m.n_head},
      {"model", "channels", &m.channels},
      {"model", "init_from", &m.init_from},
      {"pipeline", "stages", &p.stages},
      {"pipeline", "schedule", &p.schedule},
      {"pipeline", "placement", &p.placement},
      {"pipeline", "virtual_stages", &p.virtual_stages},
      {"pipeline", "micro_batches", &p.micro_batches},
      {"pipeline", "micro_batch_size", &p.micro_batch_size},
      {"pipeline", "partition", &p.partition},
      {"pipeline", "manual_layers", &p.manual_layers},
      {"pipeline", "layer_costs", &p.layer_costs},
      {"pipeline", "recompute", &p.recompute},
      {"pipeline", "offload", &p.offload},
      {"pipeline", "memory_limit_gib", &p.memory_limit_gib},
      {"parallel", "data", &c.parallel.data},
      {"parallel", "overlap_grad_reduce", &c.parallel.overlap_grad_reduce},
      {"parallel", "grad_bucket_mib", &c.parallel.grad_bucket_mib},
      {"training", "steps", &t.steps},
      {"training", "lr", &t.lr},
      {"training", "min_lr", &t.min_lr},
      {"training", "lr_schedule", &t.lr_schedule},
      {"training", "warmup_steps", &t.warmup_steps},
      {"training", "decay_steps", &t.decay_steps},
      {"training", "weight_decay", &t.weight_decay},
      {"training", "grad_clip", &t.grad_clip},
      {"training", "beta1", &t.beta1},
      {"training", "beta2", &t.beta2},
      {"training", "eps", &t.eps},
      {"training", "seed", &t.seed},
      {"training", "val_every", &t.val_every},
      {"training", "val_batches", &t.val_batches},
      {"training", "sample_tokens", &t.sample_tokens},
      {"training", "max_nonfinite_steps", &t.max_nonfinite_steps},
      {"data", "train", &c.data.train},
      {"data", "val", &c.data.val},
      {"runtime", "device", &r.device},
      {"runtime", "precision", &r.precision},
      {"runtime", "comm", &r.comm},
      {"runtime", "threads", &r.threads},
      {"runtime", "timeout_s", &r.timeout_s},
      {"checkpoint", "dir", &k.dir},
      {"checkpoint", "every", &k.every},
      {"checkpoint", "keep", &k.keep},
      {"checkpoint", "resume", &k.resume},
      {"logging", "dir", &l.dir},
      {"logging", "name", &l.name},
      {"logging", "every", &l.every},
      {"logging", "trace", &l.trace},
  };
}

namespace {

// Always double-quoted, so globs ("*.bin" would be a YAML alias), "none", "123" or "true"
// all come back as the same string.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(ch));
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string config_field_text(const ConfigFieldRef& ref) {
  // fmt's "{}" for a double is the shortest text that parses back to the same bits.
  struct Text {
    std::string operator()(const int* v) const { return fmt::format("{}", *v); }
    std::string operator()(const double* v) const { return fmt::format("{}", *v); }
    std::string operator()(const bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(const std::string* v) const { return quoted(*v); }
    std::string operator()(const std::uint64_t* v) const { return fmt::format("{}", *v); }
    std::string operator()(const std::vector<int>* v) const {
      return fmt::format("[{}]", fmt::join(*v, ", "));
    }
    std::string operator()(const std::vector<double>* v) const {
      return fmt::format("[{}]", fmt::join(*v, ", "));
    }
  };
  return std::visit(Text{}, ref);
}

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  std::string out =
      "# pptrain config, fully resolved: every key, defaults included (DESIGN.md section 10)\n";
  std::string section;
  for (const ConfigField& f : config_fields(copy)) {
    if (section != f.section) {
      section = f.section;
      out += fmt::format("\n{}:\n", section);
    }
    out += fmt::format("  {}: {}\n", f.name, config_field_text(f.ref));
  }
  return out;
}

std::string Config::where(const std::string& key) const {
  auto it = key_origin.find(key);
  if (it != key_origin.end()) return fmt::format("{}: {}", it->second, key);
  return fmt::format("{}: {} (default)", source_path.empty() ? "<built in code>" : source_path,
                     key);
}

}  // namespace pptrain
