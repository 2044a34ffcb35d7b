#include "io/llmc_model.h"

#include <array>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/durable_file.h"

namespace pptrain {

namespace {

// The header fields after magic and version, in file order, for messages.
constexpr std::array<const char*, 6> kSizeFields = {"maxT", "V", "L", "NH", "C", "Vp"};

std::size_t bytes_per_value(int version) { return version == kLlmcVersionBf16 ? 2 : 4; }

// One of llm.c's 16 tensors: a single parameter, or one per layer concatenated over layers.
// Both are the parameter table's entries, in file order.
std::vector<std::vector<ParamSpec>> llmc_tensor_parts(const GPT2Shape& s) {
  std::vector<std::vector<ParamSpec>> tensors;
  for (const ParamSpec& p : s.layer_params(0)) tensors.push_back({p});  // wte, wpe
  const std::size_t per_block = s.layer_params(1).size();
  for (std::size_t k = 0; k < per_block; ++k) {
    std::vector<ParamSpec> parts;
    for (int l = 0; l < s.n_layer; ++l) parts.push_back(s.layer_params(1 + l)[k]);
    tensors.push_back(std::move(parts));
  }
  for (const ParamSpec& p : s.layer_params(s.n_layer + 1)) {
    if (p.name != "wte") tensors.push_back({p});  // lnfw, lnfb; the tied wte is written once
  }
  return tensors;
}

}  // namespace

std::uint16_t fp32_to_bf16(float value) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(value);
  if (std::isnan(value)) {
    // Truncate, but keep it a NaN: a payload only in the dropped bits would leave an infinity.
    std::uint16_t h = static_cast<std::uint16_t>(u >> 16);
    if ((h & 0x7F) == 0) h |= 0x40;
    return h;
  }
  // Adding 0x7FFF rounds up when the dropped half is > 0x8000; the kept lowest bit breaks
  // the 0x8000 tie towards even. Carries into the exponent are right (up to infinity).
  const std::uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding) >> 16);
}

float bf16_to_fp32(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

std::uint64_t llmc_param_bytes(const GPT2Shape& shape, int version) {
  std::uint64_t n = 0;
  for (const ParamSpec& p : model_param_specs(shape)) n += p.numel();
  return n * bytes_per_value(version);
}

ModelFile read_llmc_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PPT_CHECK(in.good() && !std::filesystem::is_directory(path), "cannot read '{}'", path);
  in.seekg(0, std::ios::end);
  const std::uint64_t file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  PPT_CHECK(file_size >= kLlmcHeaderBytes,
            "{}: {} bytes is too short for an llm.c model file (its header alone is {} bytes)", path,
            file_size, kLlmcHeaderBytes);
  std::array<std::int32_t, 256> h{};
  in.read(reinterpret_cast<char*>(h.data()), kLlmcHeaderBytes);
  PPT_CHECK(in.good(), "{}: cannot read the header", path);
  PPT_CHECK(h[0] == kLlmcModelMagic, "{}: bad magic {}, not an llm.c model file (expected {}){}", path,
            h[0], kLlmcModelMagic,
            h[0] == 20240520 ? "; it is an llm.c token shard" : "");  // the shard magic
  const int version = h[1];
  PPT_CHECK(version == kLlmcVersionFp32 || version == kLlmcVersionBf16,
            "{}: llm.c model version {} is not supported (supported: 3 = fp32 parameters, 5 = bf16 "
            "parameters)", path, version);
  for (std::size_t i = 0; i < kSizeFields.size(); ++i) {
    PPT_CHECK(h[2 + i] > 0, "{}: header field {} (int {}) is {}, it must be positive", path, kSizeFields[i],
              2 + i, h[2 + i]);
  }
  ModelFile model;
  model.version = version;
  model.shape.max_seq_len = h[2];
  model.shape.vocab_size = h[3];
  model.shape.n_layer = h[4];
  model.shape.n_head = h[5];
  model.shape.channels = h[6];
  model.shape.padded_vocab_size = h[7];
  check_model_shape(model.shape, path);
  const GPT2Shape& s = model.shape;

  // In double first: int32 sizes can describe more bytes than a uint64 holds.
  const double C = s.channels, L = s.n_layer;
  const double approx =
      (static_cast<double>(s.padded_vocab_size) + s.max_seq_len) * C + L * (12 * C * C + 13 * C) + 2 * C;
  PPT_CHECK(approx * bytes_per_value(version) <= 1e15,
            "{}: the header describes {:.3g} parameters, not a plausible model (corrupt header?)", path,
            approx);
  // approx is exact here (integer terms below 2^53). A file too small for it is truncated, found
  // before llmc_param_bytes walks the parameter table, whose length grows with L: a 1.6 KB file
  // claiming 1.5e9 layers would build 1.8e10 entries first (fuzz/corpus/model_files/regress_*).
  const double approx_bytes = approx * static_cast<double>(bytes_per_value(version));
  const std::uint64_t want = static_cast<double>(file_size - kLlmcHeaderBytes) < approx_bytes
                                 ? kLlmcHeaderBytes + static_cast<std::uint64_t>(approx_bytes)
                                 : kLlmcHeaderBytes + llmc_param_bytes(s, version);
  PPT_CHECK(file_size >= want,
            "{}: truncated: {} bytes, but a version {} model of this shape (V {}, Vp {}, maxT {}, L {}, NH {}, "
            "C {}) takes {}", path, file_size, version, s.vocab_size, s.padded_vocab_size, s.max_seq_len,
            s.n_layer, s.n_head, s.channels, want);
  PPT_CHECK(file_size == want,
            "{}: {} bytes after the parameters: the header's shape does not match the file ({} bytes, "
            "expected {})", path, file_size - want, file_size, want);

  std::vector<std::uint16_t> half;
  for (const std::vector<ParamSpec>& parts : llmc_tensor_parts(s)) {
    for (const ParamSpec& p : parts) {
      LoadedTensor t;
      t.shape.assign(p.shape.begin(), p.shape.end());
      t.values.resize(p.numel());
      if (version == kLlmcVersionFp32) {
        in.read(reinterpret_cast<char*>(t.values.data()), static_cast<std::streamsize>(4 * p.numel()));
      } else {
        half.resize(p.numel());
        in.read(reinterpret_cast<char*>(half.data()), static_cast<std::streamsize>(2 * p.numel()));
        for (std::size_t i = 0; i < half.size(); ++i) t.values[i] = bf16_to_fp32(half[i]);
      }
      PPT_CHECK(in.good(), "{}: read failed in tensor '{}'", path, p.name);
      model.tensors.emplace(p.name, std::move(t));
    }
  }
  return model;
}

void write_llmc_model(const std::string& path, const GPT2Shape& shape, const NamedTensors& tensors,
                      int version) {
  PPT_CHECK(version == kLlmcVersionFp32 || version == kLlmcVersionBf16,
            "{}: cannot write llm.c model version {} (supported: 3 = fp32, 5 = bf16)", path, version);
  check_model_shape(shape, path);
  check_model_tensors(shape, tensors, path);
  std::array<std::int32_t, 256> h{};
  h[0] = kLlmcModelMagic;
  h[1] = version;
  h[2] = shape.max_seq_len;
  h[3] = shape.vocab_size;
  h[4] = shape.n_layer;
  h[5] = shape.n_head;
  h[6] = shape.channels;
  h[7] = shape.padded_vocab_size;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PPT_CHECK(out.good(), "cannot write '{}'", tmp);
    out.write(reinterpret_cast<const char*>(h.data()), kLlmcHeaderBytes);
    std::vector<std::uint16_t> half;
    for (const std::vector<ParamSpec>& parts : llmc_tensor_parts(shape)) {
      for (const ParamSpec& p : parts) {
        const std::vector<float>& v = tensors.at(p.name).values;
        if (version == kLlmcVersionFp32) {
          out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(4 * v.size()));
        } else {
          half.resize(v.size());
          for (std::size_t i = 0; i < v.size(); ++i) half[i] = fp32_to_bf16(v[i]);
          out.write(reinterpret_cast<const char*>(half.data()), static_cast<std::streamsize>(2 * half.size()));
        }
      }
    }
    out.flush();
    PPT_CHECK(out.good(), "failed writing '{}' (disk full?)", tmp);
  }
  fsync_path(tmp);
  rename_durably(tmp, path);
}

}  // namespace pptrain
