#include "io/checkpoint.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "io/durable_file.h"

namespace pptrain {

namespace fs = std::filesystem;

namespace {

// CRC-32 (IEEE 802.3, as zlib and `crc32` compute it), table-driven.
std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

template <typename T>
T required(const nlohmann::json& j, const char* key, const std::string& path) {
  PPT_CHECK(j.contains(key), "{}: manifest lacks '{}'", path, key);
  if constexpr (std::is_integral_v<T>) {
    // get<T>() converts 1e300 or 2^40 unchecked (a float-to-int cast out of range is undefined
    // behaviour: fuzz/corpus/model_files/regress_manifest_*), so integers are range-checked.
    const nlohmann::json& v = j.at(key);
    const bool fits = v.is_number_unsigned() ? std::in_range<T>(v.get<std::uint64_t>())
                                             : v.is_number_integer() && std::in_range<T>(v.get<std::int64_t>());
    PPT_CHECK(fits, "{}: manifest field '{}' must be an integer in [{}, {}], got {}", path, key,
              std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), v.dump());
  }
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    PPT_THROW("{}: manifest field '{}' has the wrong type ({})", path, key, j.at(key).dump());
  }
}

}  // namespace

std::uint32_t crc32_of_file(const std::string& path) {
  static const std::array<std::uint32_t, 256> table = make_crc_table();
  std::ifstream in(path, std::ios::binary);
  PPT_CHECK(in.good(), "cannot read '{}'", path);
  std::uint32_t crc = 0xFFFFFFFFu;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      crc = table[(crc ^ static_cast<unsigned char>(buf[i])) & 0xFFu] ^ (crc >> 8);
    }
  }
  return crc ^ 0xFFFFFFFFu;
}

CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir) {
  const std::string path = (fs::path(checkpoint_dir) / "manifest.json").string();
  std::ifstream in(path);
  PPT_CHECK(in.good(), "{}: not a checkpoint (no readable manifest.json)", checkpoint_dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    PPT_THROW("{}: not valid JSON ({})", path, e.what());
  }
  // Not j.value("format", ""): it throws json's type_error when format is not a string.
  PPT_CHECK(j.is_object() && j.contains("format") && j["format"] == kCheckpointFormat,
            "{}: not a pptrain checkpoint manifest (format should be '{}')", path, kCheckpointFormat);
  const int version = required<int>(j, "version", path);
  PPT_CHECK(version == kCheckpointVersion, "{}: checkpoint version {} is not supported (this build reads {})",
            path, version, kCheckpointVersion);
  CheckpointManifest m;
  m.step = required<int>(j, "step", path);
  m.seed = required<std::uint64_t>(j, "seed", path);
  if (j.contains("train_sequences")) {
    m.train_sequences = required<std::int64_t>(j, "train_sequences", path);
    PPT_CHECK(m.train_sequences >= 0, "{}: train_sequences {} is negative", path, m.train_sequences);
  }
  m.config_yaml = required<std::string>(j, "config", path);
  const nlohmann::json model = required<nlohmann::json>(j, "model", path);
  m.shape.vocab_size = required<int>(model, "vocab_size", path);
  m.shape.padded_vocab_size = required<int>(model, "padded_vocab_size", path);
  m.shape.max_seq_len = required<int>(model, "seq_len", path);
  m.shape.n_layer = required<int>(model, "n_layer", path);
  m.shape.n_head = required<int>(model, "n_head", path);
  m.shape.channels = required<int>(model, "channels", path);
  PPT_CHECK(m.step >= 0 && m.shape.n_layer >= 1 && m.shape.channels >= 1 && m.shape.n_head >= 1,
            "{}: impossible step or model shape", path);
  for (const nlohmann::json& s : required<nlohmann::json>(j, "stages", path)) {
    CheckpointStageFile f;
    f.stage = required<int>(s, "stage", path);
    f.first_layer = required<int>(s, "first_layer", path);
    f.end_layer = required<int>(s, "end_layer", path);
    f.file = required<std::string>(s, "file", path);
    f.bytes = required<std::uint64_t>(s, "bytes", path);
    f.crc32 = required<std::uint32_t>(s, "crc32", path);
    PPT_CHECK(f.file.find('/') == std::string::npos && !f.file.empty(),
              "{}: stage file name '{}' must be a plain name inside the checkpoint", path, f.file);
    m.stages.push_back(f);
  }
  PPT_CHECK(!m.stages.empty(), "{}: lists no stage files", path);
  return m;
}

NamedTensors read_checkpoint_tensors(const std::string& checkpoint_dir, const CheckpointManifest& manifest,
                                     const std::function<bool(const CheckpointStageFile&)>& wanted) {
  NamedTensors all;
  for (const CheckpointStageFile& f : manifest.stages) {
    if (wanted && !wanted(f)) continue;
    const std::string path = (fs::path(checkpoint_dir) / f.file).string();
    std::error_code ec;
    const std::uint64_t size = fs::file_size(path, ec);
    PPT_CHECK(!ec, "{}: missing ({})", path, ec.message());
    PPT_CHECK(size == f.bytes, "{}: {} bytes, the manifest says {} (truncated or replaced)", path,
              size, f.bytes);
    const std::uint32_t crc = crc32_of_file(path);
    PPT_CHECK(crc == f.crc32, "{}: CRC-32 {:08x} does not match the manifest's {:08x} (the file is corrupt)",
              path, crc, f.crc32);
    SafetensorsFile file = read_safetensors(path);
    for (auto& [name, tensor] : file.tensors) all[name] = std::move(tensor);
  }
  return all;
}

std::optional<std::string> find_latest_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  std::vector<std::pair<int, std::string>> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step_", 0) != 0 || !entry.is_directory()) continue;
    try {
      found.emplace_back(read_checkpoint_manifest(entry.path().string()).step, entry.path().string());
    } catch (const Error&) {
      // An unreadable manifest is not a complete checkpoint; older ones may still be.
    }
  }
  if (found.empty()) return std::nullopt;
  return std::max_element(found.begin(), found.end())->second;
}

std::string checkpoint_dir_name(int step) { return fmt::format("step_{:08d}", step); }

void write_checkpoint_manifest(const std::string& checkpoint_dir, const CheckpointManifest& m) {
  // ordered_json keeps the keys in this order, so the manifest reads top-down.
  nlohmann::ordered_json stages = nlohmann::ordered_json::array();
  for (const CheckpointStageFile& f : m.stages) {
    stages.push_back({{"stage", f.stage}, {"first_layer", f.first_layer}, {"end_layer", f.end_layer},
                      {"file", f.file}, {"bytes", f.bytes}, {"crc32", f.crc32}});
  }
  const nlohmann::ordered_json j = {
      {"format", kCheckpointFormat},
      {"version", kCheckpointVersion},
      {"step", m.step},
      {"seed", m.seed},
      {"train_sequences", m.train_sequences},
      {"model", {{"vocab_size", m.shape.vocab_size}, {"padded_vocab_size", m.shape.padded_vocab_size},
                 {"seq_len", m.shape.max_seq_len}, {"n_layer", m.shape.n_layer},
                 {"n_head", m.shape.n_head}, {"channels", m.shape.channels}}},
      {"stages", stages},
      {"config", m.config_yaml}};
  write_file_durably((fs::path(checkpoint_dir) / "manifest.json").string(), j.dump(2) + "\n");
}

}  // namespace pptrain
