// lib/io model formats: llm.c model files (bit-exact round trips in fp32 and bf16, bf16
// rounding, every corruption and its message, fixtures written by an independent Python
// writer) and Hugging Face GPT-2 exports (names, Conv1D transposes, round trip).
#include <unistd.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "core/error.h"
#include "io/hf_export.h"
#include "io/llmc_model.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace pptrain;
using Catch::Matchers::Contains;
using pptrain::test::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string fixture(const std::string& name) { return std::string(PPTRAIN_TEST_DATA_DIR) + "/models/" + name; }

// The fixtures' model (test/data/models/make_fixtures.py): maxT 4, V 5, L 1, NH 2, C 4, Vp 8.
GPT2Shape small_shape(int n_layer = 1) { return GPT2Shape{5, 8, 4, n_layer, 2, 4}; }

NamedTensors random_tensors(const GPT2Shape& shape, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  NamedTensors tensors;
  for (const ParamSpec& p : model_param_specs(shape)) {
    LoadedTensor t;
    t.shape.assign(p.shape.begin(), p.shape.end());
    t.values.resize(p.numel());
    for (float& v : t.values) v = normal(gen);
    tensors[p.name] = std::move(t);
  }
  return tensors;
}

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

void require_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("no error was raised");
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find('\n') == std::string::npos);
    for (const std::string& p : parts) CHECK_THAT(message, Contains(p));
  }
}

}  // namespace

TEST_CASE("bf16 rounding: nearest, ties to even, sign, infinities, NaN", "[formats]") {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -7);  // bf16 keeps 7 mantissa bits
  CHECK(fp32_to_bf16(one) == 0x3F80);
  CHECK(fp32_to_bf16(one + ulp / 2) == 0x3F80);                 // tie, 1.0 is even: down
  CHECK(fp32_to_bf16(one + 3 * ulp / 2) == 0x3F82);             // tie, 1+ulp is odd: up
  CHECK(fp32_to_bf16(std::nextafter(one + ulp / 2, 2.0f)) == 0x3F81);  // above the tie: up
  CHECK(fp32_to_bf16(std::nextafter(one + ulp / 2, 0.0f)) == 0x3F80);  // below it: down
  CHECK(fp32_to_bf16(-(one + ulp / 2)) == 0xBF80);              // sign kept, same rule
  CHECK(fp32_to_bf16(-(one + 3 * ulp / 2)) == 0xBF82);
  CHECK(fp32_to_bf16(-0.0f) == 0x8000);
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(fp32_to_bf16(inf) == 0x7F80);
  CHECK(fp32_to_bf16(-inf) == 0xFF80);
  CHECK(fp32_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds past bf16's max
  CHECK(fp32_to_bf16(std::numeric_limits<float>::lowest()) == 0xFF80);
  CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lies only in the dropped bits stays a NaN, not an infinity.
  CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)))));
  // Every bf16 is an fp32 exactly, and converts back to itself (NaNs included).
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<std::uint16_t>(h));
    REQUIRE(bits(f) == h << 16);
    REQUIRE(fp32_to_bf16(f) == h);
  }
}

TEST_CASE("llm.c v3 and v5 files round-trip bit for bit", "[formats]") {
  TempDir dir;
  const GPT2Shape shape = small_shape(2);
  const NamedTensors tensors = random_tensors(shape, 7);
  for (int version : {kLlmcVersionFp32, kLlmcVersionBf16}) {
    INFO("version " << version);
    const std::string a = dir / "a.bin", b = dir / "b.bin";
    write_llmc_model(a, shape, tensors, version);
    CHECK_FALSE(fs::exists(a + ".tmp"));
    CHECK(fs::file_size(a) == kLlmcHeaderBytes + llmc_param_bytes(shape, version));
    const ModelFile m = read_llmc_model(a);
    CHECK(m.version == version);
    CHECK(m.shape.vocab_size == 5);
    CHECK(m.shape.padded_vocab_size == 8);
    CHECK(m.shape.n_layer == 2);
    CHECK(m.tensors.size() == model_param_specs(shape).size());
    for (const auto& [name, t] : tensors) {
      const LoadedTensor& got = m.tensors.at(name);
      REQUIRE(got.shape == t.shape);
      for (std::size_t i = 0; i < t.values.size(); ++i) {
        const float want = version == kLlmcVersionFp32 ? t.values[i] : bf16_to_fp32(fp32_to_bf16(t.values[i]));
        REQUIRE(bits(got.values[i]) == bits(want));
      }
    }
    write_llmc_model(b, m.shape, m.tensors, version);
    CHECK(read_bytes(a) == read_bytes(b));
  }
}

TEST_CASE("llm.c fixtures written by Python read back, and write back byte-identical", "[formats]") {
  TempDir dir;
  for (const char* name : {"valid_v3.bin", "valid_v5.bin"}) {
    INFO(name);
    const ModelFile m = read_llmc_model(fixture(name));
    CHECK(m.version == (std::string(name) == "valid_v3.bin" ? 3 : 5));
    CHECK(m.shape.max_seq_len == 4);
    CHECK(m.shape.n_head == 2);
    // Parameter i (in file order) is (i % 17 - 8) / 16.
    std::size_t i = 0;
    for (const char* t : {"wte", "wpe", "h.0.ln1w"}) {
      for (float v : m.tensors.at(t).values) REQUIRE(v == static_cast<float>(static_cast<int>(i++ % 17) - 8) / 16);
    }
    write_llmc_model(dir / "again.bin", m.shape, m.tensors, m.version);
    CHECK(read_bytes(dir / "again.bin") == read_bytes(fixture(name)));
  }
}

TEST_CASE("every corrupt llm.c file is one error naming the file and the fault", "[formats]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"bad_magic.bin", {"bad magic 305419896", "not an llm.c model file (expected 20240326)"}},
      {"bad_version_4.bin", {"version 4 is not supported", "3 = fp32", "5 = bf16"}},
      {"bad_version_7.bin", {"version 7 is not supported", "3 = fp32", "5 = bf16"}},
      {"bad_truncated.bin", {"truncated: 2124 bytes", "takes 2224"}},
      {"bad_extra_bytes.bin", {"8 bytes after the parameters", "expected 2224"}},
      {"bad_heads.bin", {"C = 4 is not divisible by the head count NH = 3"}},
      {"bad_padded_vocab.bin", {"Vp = 8 is smaller than the vocab V = 9"}},
      {"bad_zero_layers.bin", {"field L (int 4) is 0, it must be positive"}},
      {"bad_huge_sizes.bin", {"describes 1.45e+25 parameters, not a plausible model"}},
      {"bad_short_header.bin", {"512 bytes is too short", "1024"}},
      {"bad_empty.bin", {"0 bytes is too short"}},
  };
  for (const auto& [name, parts] : cases) {
    INFO(name);
    std::vector<std::string> want = parts;
    want.push_back(fixture(name));
    require_error([&] { read_llmc_model(fixture(name)); }, want);
    require_error([&] { load_model_file(fixture(name)); }, {fixture(name)});
  }
  require_error([&] { read_llmc_model(fixture("no_such_file.bin")); }, {"cannot read", "no_such_file.bin"});
  const std::string shard = std::string(PPTRAIN_TEST_DATA_DIR) + "/shards/valid.bin";
  require_error([&] { read_llmc_model(shard); }, {"bad magic 20240520", "it is an llm.c token shard"});
}

TEST_CASE("llm.c writer checks the version and every tensor", "[formats]") {
  TempDir dir;
  const GPT2Shape shape = small_shape();
  NamedTensors tensors = random_tensors(shape, 1);
  require_error([&] { write_llmc_model(dir / "m.bin", shape, tensors, 4); }, {"version 4", "m.bin"});
  tensors.at("h.0.fcw").shape = {4, 16};
  require_error([&] { write_llmc_model(dir / "m.bin", shape, tensors, 3); },
                {"tensor 'h.0.fcw' has shape [4, 16]", "[16, 4]"});
  tensors.at("h.0.fcw").shape = {16, 4};
  tensors.erase("lnfb");
  require_error([&] { write_llmc_model(dir / "m.bin", shape, tensors, 3); }, {"no tensor 'lnfb'"});
  CHECK_FALSE(fs::exists(dir / "m.bin"));
}

TEST_CASE("Hugging Face export: names, Conv1D transposes, no padding, config; round trip", "[formats]") {
  TempDir dir;
  const GPT2Shape shape = small_shape(2);
  const NamedTensors tensors = random_tensors(shape, 3);
  export_hf_gpt2(dir / "hf", shape, tensors);
  const SafetensorsFile st = read_safetensors(dir / "hf/model.safetensors");
  CHECK(st.metadata.at("format") == "pt");
  CHECK(st.tensors.size() == 2 + 12 * 2 + 2);
  CHECK_FALSE(st.tensors.count("lm_head.weight"));
  const LoadedTensor& wte = st.tensors.at("transformer.wte.weight");
  CHECK(wte.shape == std::vector<std::int64_t>{5, 4});  // V rows, the padding dropped
  CHECK(std::equal(wte.values.begin(), wte.values.end(), tensors.at("wte").values.begin()));
  const LoadedTensor& c_attn = st.tensors.at("transformer.h.1.attn.c_attn.weight");
  CHECK(c_attn.shape == std::vector<std::int64_t>{4, 12});  // (in, out)
  const std::vector<float>& qkvw = tensors.at("h.1.qkvw").values;  // (out 12, in 4)
  for (int o = 0; o < 12; ++o) {
    for (int i = 0; i < 4; ++i) REQUIRE(c_attn.values[i * 12 + o] == qkvw[o * 4 + i]);
  }
  CHECK(st.tensors.at("transformer.h.0.mlp.c_proj.weight").shape == std::vector<std::int64_t>{16, 4});
  CHECK(st.tensors.at("transformer.h.0.mlp.c_fc.bias").values == tensors.at("h.0.fcb").values);
  CHECK(st.tensors.at("transformer.ln_f.weight").values == tensors.at("lnfw").values);

  std::ifstream config_file(dir / "hf/config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file);
  CHECK(config["model_type"] == "gpt2");
  CHECK(config["architectures"][0] == "GPT2LMHeadModel");
  CHECK(config["vocab_size"] == 5);
  CHECK(config["n_positions"] == 4);
  CHECK(config["n_ctx"] == 4);
  CHECK(config["n_embd"] == 4);
  CHECK(config["n_layer"] == 2);
  CHECK(config["n_head"] == 2);
  CHECK(config["layer_norm_epsilon"] == 1e-5);
  CHECK(config["activation_function"] == "gelu_new");
  CHECK(config["tie_word_embeddings"] == true);

  // Import pads wte to a multiple of 128 with zeros; every real value comes back exactly.
  const ModelFile m = read_hf_gpt2(dir / "hf");
  CHECK(m.shape.padded_vocab_size == 128);
  CHECK(m.shape.vocab_size == 5);
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const std::vector<float>& got = m.tensors.at(name).values;
    if (name == "wte") {
      CHECK(std::equal(got.begin(), got.begin() + 5 * 4, t.values.begin()));
      CHECK(std::all_of(got.begin() + 5 * 4, got.end(), [](float v) { return v == 0.0f; }));
    } else {
      CHECK(got == t.values);
    }
  }
  // Export of the import: the same files, byte for byte; the safetensors file alone reads too.
  export_hf_gpt2(dir / "again", m.shape, m.tensors);
  CHECK(read_bytes(dir / "hf/model.safetensors") == read_bytes(dir / "again/model.safetensors"));
  CHECK(read_bytes(dir / "hf/config.json") == read_bytes(dir / "again/config.json"));
  CHECK(load_model_file(dir / "hf/model.safetensors").tensors.at("h.1.qkvw").values == qkvw);
}

TEST_CASE("Hugging Face import: the hub's unprefixed names, mask buffers, tied lm_head; errors", "[formats]") {
  TempDir dir;
  const GPT2Shape shape = small_shape();
  const NamedTensors tensors = random_tensors(shape, 5);
  export_hf_gpt2(dir / "hf", shape, tensors);
  const std::string st_path = dir / "hf/model.safetensors";
  const SafetensorsFile st = read_safetensors(st_path);
  // Rewrite the file through `edit`, keeping config.json.
  auto rewrite = [&](const std::function<void(std::map<std::string, LoadedTensor>&)>& edit) {
    std::map<std::string, LoadedTensor> t = st.tensors;
    edit(t);
    std::vector<TensorRef> refs;
    for (const auto& [name, lt] : t) refs.push_back({name, lt.shape, lt.values.data()});
    write_safetensors(st_path, refs);
  };
  rewrite([](auto& t) {
    std::map<std::string, LoadedTensor> hub;  // the hub's gpt2 files have no "transformer."
    for (auto& [name, lt] : t) hub[name.substr(std::string("transformer.").size())] = lt;
    hub["h.0.attn.bias"] = {{1, 1, 4, 4}, std::vector<float>(16, 1.0f)};
    hub["lm_head.weight"] = hub.at("wte.weight");
    t = hub;
  });
  CHECK(read_hf_gpt2(dir / "hf").tensors.at("h.0.attprojw").values == tensors.at("h.0.attprojw").values);

  rewrite([](auto& t) { t["lm_head.weight"] = {{5, 4}, std::vector<float>(20, 0.5f)}; });
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {st_path, "lm_head.weight differs from wte"});
  rewrite([](auto& t) { t.erase("transformer.h.0.mlp.c_fc.bias"); });
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {st_path, "no tensor 'transformer.h.0.mlp.c_fc.bias'"});
  rewrite([](auto& t) { t.at("transformer.h.0.attn.c_proj.weight").shape = {2, 8}; });
  require_error([&] { read_hf_gpt2(dir / "hf"); },
                {"'transformer.h.0.attn.c_proj.weight' has shape [2, 8], config.json implies [4, 4]"});
  rewrite([](auto& t) { t["transformer.h.7.extra"] = {{1}, {1.0f}}; });
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {"unexpected tensor 'h.7.extra'"});

  std::ofstream(dir / "hf/config.json") << R"({"model_type": "gpt2", "vocab_size": 5, "n_positions": 4,
    "n_embd": 4, "n_layer": 1, "n_head": 2, "activation_function": "relu"})";
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {"config.json", "activation_function 'relu'"});
  std::ofstream(dir / "hf/config.json") << R"({"model_type": "gpt2", "vocab_size": 5, "n_embd": 4})";
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {"config.json", "lacks 'n_ctx'"});
  fs::remove(dir / "hf/config.json");
  require_error([&] { read_hf_gpt2(dir / "hf"); }, {"no config.json beside it"});
  require_error([&] { load_model_file(dir / "hf"); }, {"neither a pptrain checkpoint", "Hugging Face"});
}

TEST_CASE("Saved-params directories: stage files merge, the tied wte must agree", "[formats]") {
  TempDir dir;
  const GPT2Shape shape = small_shape(2);
  const NamedTensors tensors = random_tensors(shape, 9);
  // Stage 0: embedding and block 0; stage 1: block 1, head and the tied wte.
  auto write_stage = [&](const std::string& file, const std::vector<std::string>& names) {
    std::vector<TensorRef> refs;
    for (const std::string& n : names) refs.push_back({n, tensors.at(n).shape, tensors.at(n).values.data()});
    write_safetensors(dir / file, refs);
  };
  std::vector<std::string> first = {"wte", "wpe"}, last = {"lnfw", "lnfb", "wte"};
  for (const ParamSpec& p : shape.layer_params(1)) first.push_back(p.name);
  for (const ParamSpec& p : shape.layer_params(2)) last.push_back(p.name);
  write_stage("stage0.safetensors", first);
  write_stage("stage1.safetensors", last);
  const ModelFile m = read_saved_params(dir.path.string(), shape, "cfg.yaml");
  CHECK(m.tensors.size() == tensors.size());
  CHECK(m.tensors.at("h.1.fcw").values == tensors.at("h.1.fcw").values);

  GPT2Shape other = shape;
  other.channels = 8;
  require_error([&] { read_saved_params(dir.path.string(), other, "cfg.yaml"); }, {"cfg.yaml", "shape"});
  const std::vector<float> zeros(32, 0.0f);
  write_safetensors(dir / "stage2.safetensors", {{"wte", {8, 4}, zeros.data()}});
  require_error([&] { read_saved_params(dir.path.string(), shape, "cfg.yaml"); },
                {"stage2.safetensors", "'wte' appears in two stage files with different values"});
}

TEST_CASE("load_model_file tells the kinds apart", "[formats]") {
  TempDir dir;
  CHECK(load_model_file(fixture("valid_v5.bin")).version == 5);
  std::ofstream(dir / "notes.txt") << "hello, not a model";
  require_error([&] { load_model_file(dir / "notes.txt"); }, {"notes.txt", "not a model file", "20240326"});
  require_error([&] { load_model_file(dir / "missing"); }, {"missing: no such file or directory"});
  require_error([&] { load_model_file(std::string(PPTRAIN_TEST_DATA_DIR) + "/shards/valid.bin"); },
                {"valid.bin", "found magic 20240520"});
}
