#include "io/safetensors.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/durable_file.h"

namespace pptrain {

namespace {
// Larger headers are not safetensors files we wrote or would accept (HF caps at 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const TensorRef& t : tensors) {
    std::uint64_t n = 1;
    for (std::int64_t d : t.shape) n *= static_cast<std::uint64_t>(d);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes, as HF does
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PPT_CHECK(out.good(), "cannot write '{}'", tmp);
    const std::uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorRef& t : tensors) {
      std::uint64_t count = 1;
      for (std::int64_t d : t.shape) count *= static_cast<std::uint64_t>(d);
      out.write(reinterpret_cast<const char*>(t.data), static_cast<std::streamsize>(4 * count));
    }
    out.flush();
    PPT_CHECK(out.good(), "failed writing '{}' (disk full?)", tmp);
  }
  fsync_path(tmp);
  rename_durably(tmp, path);
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PPT_CHECK(in.good(), "cannot read '{}'", path);
  in.seekg(0, std::ios::end);
  const std::uint64_t file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  PPT_CHECK(file_size >= 8, "{}: {} bytes is too short for a safetensors file", path, file_size);
  std::uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  PPT_CHECK(header_size <= kMaxHeaderBytes && 8 + header_size <= file_size,
            "{}: header length {} does not fit the file of {} bytes (truncated or not safetensors)",
            path, header_size, file_size);
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    PPT_THROW("{}: the header is not valid JSON: {}", path, e.what());
  }
  PPT_CHECK(header.is_object(), "{}: the header is not a JSON object", path);
  const std::uint64_t data_size = file_size - 8 - header_size;
  SafetensorsFile file;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      // Iterating a non-object yields iterators whose key() throws json's invalid_iterator.
      PPT_CHECK(it->is_object(), "{}: __metadata__ is not a JSON object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        PPT_CHECK(m->is_string(), "{}: metadata '{}' is not a string", path, m.key());
        file.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const nlohmann::json& t = *it;
    PPT_CHECK(t.is_object() && t.contains("dtype") && t.contains("shape") && t.contains("data_offsets"),
              "{}: tensor '{}' lacks dtype, shape or data_offsets", path, it.key());
    PPT_CHECK(t["dtype"] == "F32", "{}: tensor '{}' has dtype {}, only F32 is read", path, it.key(),
              t["dtype"].dump());
    LoadedTensor lt;
    // The value count saturates at one more than the data can hold: a shape such as [2^62]
    // must not wrap around to match a small byte range (fuzz/corpus/model_files/regress_*).
    const std::uint64_t max_count = data_size / 4;
    std::uint64_t count = 1;
    bool empty = false;
    for (const auto& d : t["shape"]) {
      PPT_CHECK(d.is_number_integer() && d.get<std::int64_t>() >= 0, "{}: tensor '{}' has a bad shape", path, it.key());
      lt.shape.push_back(d.get<std::int64_t>());
      const auto dim = static_cast<std::uint64_t>(lt.shape.back());
      empty = empty || dim == 0;
      count = dim != 0 && count > max_count / dim ? max_count + 1 : count * dim;
    }
    if (empty) count = 0;
    const auto& off = t["data_offsets"];
    PPT_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
              "{}: tensor '{}' has bad data_offsets", path, it.key());
    const std::uint64_t begin = off[0], end = off[1];
    PPT_CHECK(begin <= end && end <= data_size && end - begin == 4 * count,
              "{}: tensor '{}' bytes [{}, {}) do not match its shape or lie outside the {} data bytes",
              path, it.key(), begin, end, data_size);
    lt.values.resize(count);
    in.seekg(static_cast<std::streamoff>(8 + header_size + begin));
    in.read(reinterpret_cast<char*>(lt.values.data()), static_cast<std::streamsize>(4 * count));
    PPT_CHECK(in.good(), "{}: cannot read tensor '{}'", path, it.key());
    file.tensors.emplace(it.key(), std::move(lt));
  }
  return file;
}

}  // namespace pptrain
