// The YAML config loader (lib/config): defaults, the resolved-YAML round trip, --set
// overrides, and the exact one-line shape of each kind of error. Bad inputs live as files
// in test/data/configs/bad_*.yaml, each naming its expected error on its first line, so a
// new bad case is a new file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "config/config_fields.h"
#include "config/config_loader.h"
#include "core/error.h"

using pptrain::Config;

namespace {

const std::string kDataDir = std::string(PPTRAIN_TEST_DATA_DIR) + "/configs";

// The message of the pptrain::Error that f throws, or a marker that fails comparisons.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pptrain::Error& e) {
    return e.what();
  }
  return "<no error thrown>";
}

std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { pptrain::parse_config_text(yaml, "mem.yaml", overrides); });
}

const std::string kMinimal = "data:\n  train: data/tiny/*.bin\n";

}  // namespace

TEST_CASE("config: defaults fill every key but data.train", "[config]") {
  Config c = pptrain::parse_config_text(kMinimal, "mem.yaml");
  Config d;
  d.data.train = "data/tiny/*.bin";
  d.source_path = "mem.yaml";
  CHECK(pptrain::config_to_yaml(c) == pptrain::config_to_yaml(d));
  CHECK(c.pipeline.schedule == "1f1b");
  CHECK(c.training.lr == 6e-4);
  CHECK(c.padded_vocab() == 256);
  REQUIRE(c.key_origin.size() == 1);
  CHECK(c.key_origin.at("data.train") == "mem.yaml:2:10");
  CHECK(c.where("data.train") == "mem.yaml:2:10: data.train");
  CHECK(c.where("training.lr") == "mem.yaml: training.lr (default)");
  // Relative paths are kept as written; the launcher's working directory resolves them.
  CHECK(c.data.train == "data/tiny/*.bin");
}

TEST_CASE("config: schedule zbv implies two chunks per rank unless virtual_stages is given", "[config]") {
  const Config c = pptrain::parse_config_text(kMinimal + "pipeline:\n  schedule: zbv\n", "mem.yaml");
  CHECK(c.pipeline.virtual_stages == 2);
  const Config o = pptrain::parse_config_text(kMinimal, "mem.yaml", {"pipeline.schedule=zbv"});
  CHECK(o.pipeline.virtual_stages == 2);
  CHECK(pptrain::config_to_yaml(o).find("virtual_stages: 2") != std::string::npos);  // resolved
  CHECK(pptrain::parse_config_text(kMinimal, "mem.yaml").pipeline.virtual_stages == 1);
  CHECK(parse_error(kMinimal, {"pipeline.schedule=zbv", "pipeline.virtual_stages=1"})
            .find("set pipeline.virtual_stages: 2 (it is 1)") != std::string::npos);
}

TEST_CASE("config: good_full sets every key and round-trips through config_to_yaml", "[config]") {
  const std::string path = kDataDir + "/good_full.yaml";
  Config c = pptrain::load_config(path);
  CHECK(c.source_path == path);
  Config copy = c;
  for (const pptrain::ConfigField& f : pptrain::config_fields(copy)) {
    INFO(f.key());
    CHECK(c.key_origin.count(f.key()) == 1);  // the file is meant to use every key
  }
  CHECK(c.model.vocab_size == 50257);
  CHECK(c.pipeline.manual_layers == std::vector<int>{4, 3, 3, 4});
  CHECK(c.training.lr == 3e-4);
  CHECK(c.training.seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(c.data.train == "data/fineweb/*train*.bin");
  CHECK(c.runtime.timeout_s == 600.5);
  CHECK(c.logging.trace);
  CHECK(c.where("training.lr") == path + ":34:7: training.lr");
  CHECK(!c.parallel.overlap_grad_reduce);
  CHECK(c.parallel.grad_bucket_mib == 40.0);
  CHECK(c.model.init_from == "models/gpt2_124M.bin");

  const std::string yaml = pptrain::config_to_yaml(c);
  Config back = pptrain::parse_config_text(yaml, "resolved.yaml");
  CHECK(pptrain::config_to_yaml(back) == yaml);
  CHECK(back.training.min_lr == c.training.min_lr);
  CHECK(back.training.eps == c.training.eps);
}

TEST_CASE("config: awkward values survive the round trip exactly", "[config]") {
  Config c;
  c.data.train = "*.bin";                 // a YAML alias if written bare
  c.data.val = "say \"hi\" \\ # not a comment";
  c.logging.name = "123";                 // a number if written bare
  c.checkpoint.dir = "true";              // a bool if written bare
  c.training.lr = 0.1 + 0.2;              // needs all 17 digits
  c.training.min_lr = 5e-324;             // smallest subnormal
  c.training.eps = 1e-300;
  const std::string yaml = pptrain::config_to_yaml(c);
  Config back = pptrain::parse_config_text(yaml, "resolved.yaml");
  CHECK(pptrain::config_to_yaml(back) == yaml);
  CHECK(back.data.train == c.data.train);
  CHECK(back.data.val == c.data.val);
  CHECK(back.logging.name == "123");
  CHECK(back.checkpoint.dir == "true");
  CHECK(back.training.lr == c.training.lr);
  CHECK(back.training.min_lr == c.training.min_lr);
}

TEST_CASE("config: --set overrides nested keys, numbers, strings and lists", "[config]") {
  Config c = pptrain::parse_config_text(
      kMinimal + "training:\n  lr: 1.0e-3\n", "mem.yaml",
      {"training.lr=3e-4", "pipeline.stages=2", "pipeline.partition=manual",
       "pipeline.manual_layers=[3, 3]", "data.train=*.bin", "data.val=", "logging.name=123",
       "logging.trace=true", "training.steps=7", "training.steps=9",
       "pipeline.schedule=csv:s.csv"});
  CHECK(c.training.lr == 3e-4);
  CHECK(c.pipeline.stages == 2);
  CHECK(c.pipeline.manual_layers == std::vector<int>{3, 3});
  CHECK(c.data.train == "*.bin");  // not valid YAML, taken verbatim for a string key
  CHECK(c.data.val.empty());
  CHECK(c.logging.name == "123");
  CHECK(c.logging.trace);
  CHECK(c.training.steps == 9);    // the last --set wins
  CHECK(c.pipeline.schedule == "csv:s.csv");
  CHECK(c.key_origin.at("training.lr") == "--set training.lr=3e-4");
  CHECK(c.where("training.steps") == "--set training.steps=9: training.steps");
  CHECK(c.where("model.n_layer") == "mem.yaml: model.n_layer (default)");
}

TEST_CASE("config: bad overrides name the --set and the key", "[config]") {
  CHECK(parse_error(kMinimal, {"training.lr=abc"}) ==
        "--set training.lr=abc: training.lr: expected a number, got 'abc'");
  CHECK(parse_error(kMinimal, {"trainig.lr=1"}) ==
        "--set trainig.lr=1: unknown key 'trainig' (did you mean 'training'?)");
  CHECK(parse_error(kMinimal, {"training.lrr=1"}) ==
        "--set training.lrr=1: unknown key 'training.lrr' (did you mean 'training.lr'?)");
  CHECK(parse_error(kMinimal, {"training.lr"}) ==
        "--set training.lr: expected <section>.<key>=<value>, e.g. training.lr=3e-4");
  CHECK(parse_error(kMinimal, {"training=1"}) ==
        "--set training=1: 'training' is a section; set one key, e.g. training.steps=<value>");
  CHECK(parse_error(kMinimal, {"training.steps=[1"}).rfind(
            "--set training.steps=[1: training.steps: invalid YAML value: ", 0) == 0);
  CHECK(parse_error(kMinimal, {"pipeline.manual_layers=[2, x]"}) ==
        "--set pipeline.manual_layers=[2, x]: pipeline.manual_layers[1]: expected an integer, "
        "got 'x'");
  // Cross-field rules report at the key the user gave, here the override.
  CHECK(parse_error(kMinimal, {"pipeline.stages=8"}) ==
        "--set pipeline.stages=8: pipeline.stages: model.n_layer (4, the default) must be >= "
        "pipeline.stages (8): each stage needs at least one transformer block");
}

TEST_CASE("config: each kind of error has the shape file:line:col: key: what", "[config]") {
  // types
  CHECK(parse_error(kMinimal + "training:\n  lr: fast\n") ==
        "mem.yaml:4:7: training.lr: expected a number, got 'fast'");
  CHECK(parse_error(kMinimal + "training:\n  steps: 2.5\n") ==
        "mem.yaml:4:10: training.steps: expected an integer, got '2.5'");
  CHECK(parse_error(kMinimal + "training:\n  steps: abc\n") ==
        "mem.yaml:4:10: training.steps: expected an integer, got 'abc'");
  CHECK(parse_error(kMinimal + "training:\n  steps:\n") ==
        "mem.yaml:4:3: training.steps: expected an integer, got nothing");
  CHECK(parse_error(kMinimal + "training:\n  lr: .inf\n") ==
        "mem.yaml:4:7: training.lr: expected a number, got '.inf'");
  CHECK(parse_error(kMinimal + "logging:\n  trace: 1\n") ==
        "mem.yaml:4:10: logging.trace: expected true or false, got '1'");
  CHECK(parse_error(kMinimal + "model:\n  n_layer: {a: 1}\n") ==
        "mem.yaml:4:12: model.n_layer: expected an integer, got a map");
  CHECK(parse_error(kMinimal + "pipeline:\n  manual_layers: 3\n") ==
        "mem.yaml:4:18: pipeline.manual_layers: expected a list of integers like [2, 3], got '3'");
  // structure
  CHECK(parse_error("trainig:\n  lr: 1\n") ==
        "mem.yaml:1:1: unknown key 'trainig' (did you mean 'training'?)");
  CHECK(parse_error("optimizer:\n  lr: 1\n") ==
        "mem.yaml:1:1: unknown key 'optimizer' (valid sections: model, pipeline, parallel, "
        "training, data, runtime, checkpoint, logging)");
  CHECK(parse_error(kMinimal + "lr: 1\n") ==
        "mem.yaml:3:1: unknown key 'lr' (did you mean 'training.lr'? keys go under their section)");
  CHECK(parse_error(kMinimal, {"lr=1"}) ==
        "--set lr=1: unknown key 'lr' (did you mean 'training.lr'? keys go under their section)");
  CHECK(parse_error(kMinimal + "model:\n  seq_length: 128\n") ==
        "mem.yaml:4:3: unknown key 'model.seq_length' (did you mean 'model.seq_len'?)");
  CHECK(parse_error(kMinimal + "model: [1, 2]\n") ==
        "mem.yaml:3:8: model: expected a map of keys, got a list");
  CHECK(parse_error("just text") ==
        "mem.yaml:1:1: expected a map of sections (model, pipeline, parallel, training, data, "
        "runtime, checkpoint, logging), got 'just text'");
  CHECK(parse_error("data:\n  train: [unclosed\n").rfind("mem.yaml:", 0) == 0);
  CHECK(parse_error("data:\n  train: [unclosed\n").find(": invalid YAML: ") != std::string::npos);
  CHECK(parse_error("") == "mem.yaml: data.train: required (a glob of token shards)");
  CHECK(parse_error("data:\n  train: \"\"\n") ==
        "mem.yaml:2:10: data.train: required (a glob of token shards)");
  // ranges and cross-field rules
  CHECK(parse_error(kMinimal + "model:\n  n_head: 0\n") ==
        "mem.yaml:4:11: model.n_head: must be >= 1, got 0");
  CHECK(parse_error(kMinimal + "model:\n  channels: 102\n") ==
        "mem.yaml:4:13: model.channels: must be divisible by model.n_head (4, the default), "
        "got 102");
  CHECK(parse_error(kMinimal + "pipeline:\n  recompute: some\n") ==
        "mem.yaml:4:14: pipeline.recompute: expected one of none, selective, full; got 'some'");
  CHECK(parse_error(kMinimal + "pipeline:\n  recompute: selective\n") == "<no error thrown>");
  CHECK(parse_error(kMinimal + "pipeline:\n  offload: cpu\n").find(
            "mem.yaml:4:12: pipeline.offload: cpu is not implemented yet; use none") == 0);
  CHECK(parse_error(kMinimal + "training:\n  lr_schedule: wsd\n") ==
        "mem.yaml:4:16: training.lr_schedule: expected one of cosine, linear, constant; got 'wsd'");
  CHECK(parse_error(kMinimal + "training:\n  lr_schedule: linear\n  decay_steps: 20\n") == "<no error thrown>");
  CHECK(parse_error(kMinimal + "runtime:\n  comm: gloo\n") ==
        "mem.yaml:4:9: runtime.comm: expected one of auto, nccl, mpi; got 'gloo'");
  CHECK(parse_error(kMinimal + "pipeline:\n  manual_layers: [3, 3]\n") ==
        "mem.yaml:4:18: pipeline.manual_layers: only used with pipeline.partition manual, but "
        "partition is 'uniform'");
  CHECK(parse_error(kMinimal + "pipeline:\n  partition: manual\n") ==
        "mem.yaml:4:14: pipeline.partition: partition manual needs one entry per stage (1), "
        "got 0 entries");
  CHECK(parse_error(kMinimal + "checkpoint:\n  keep: 0\n") ==
        "mem.yaml:4:9: checkpoint.keep: must be >= 1, got 0");
}

TEST_CASE("config: a missing or unreadable file says why", "[config]") {
  CHECK(error_of([] { pptrain::load_config("/nonexistent/x.yaml"); }) ==
        "cannot read config '/nonexistent/x.yaml': No such file or directory");
  CHECK(error_of([] { pptrain::load_config(kDataDir); }) ==
        "cannot read config '" + kDataDir + "': Is a directory");
}

TEST_CASE("config: every bad_*.yaml fails with the error its first line expects", "[config]") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kDataDir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("bad_", 0) == 0 && entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 15);
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string first_line;
    std::getline(in, first_line);
    const std::string marker = "# expect: ";
    INFO(file.string());
    REQUIRE(first_line.rfind(marker, 0) == 0);
    const std::string expected = first_line.substr(marker.size());
    const std::string message = error_of([&] { pptrain::load_config(file.string()); });
    INFO(message);
    CHECK(message.find(expected) != std::string::npos);
    CHECK(message.rfind(file.string(), 0) == 0);         // starts with the file
    CHECK(message.find('\n') == std::string::npos);      // one line
  }
}

TEST_CASE("config: check_config_for_world wants stages x data ranks", "[config]") {
  Config c = pptrain::parse_config_text(kMinimal + "pipeline:\n  stages: 2\n", "mem.yaml");
  CHECK_NOTHROW(pptrain::check_config_for_world(c, 2));
  CHECK(error_of([&] { pptrain::check_config_for_world(c, 4); }) ==
        "mem.yaml:4:11: pipeline.stages: pipeline.stages (2) x parallel.data (1, the default) = 2 "
        "must equal the number of ranks, but the job has 4 ranks");
  Config d = pptrain::parse_config_text(kMinimal, "mem.yaml");
  CHECK(error_of([&] { pptrain::check_config_for_world(d, 3); }) ==
        "mem.yaml: pipeline.stages: pipeline.stages (1, the default) x parallel.data (1, the "
        "default) = 1 must equal the number of ranks, but the job has 3 ranks");
}
