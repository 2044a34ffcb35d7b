// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes
// of JSON {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the raw tensor bytes. Only F32 here.
// Files are written to <path>.tmp, fsynced and renamed, so a reader never sees half a file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pptrain {

struct TensorRef {
  std::string name;
  std::vector<std::int64_t> shape;
  const float* data = nullptr;
};

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct LoadedTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Checks the header length against the file size, the JSON, dtypes, shapes against byte
// ranges, and that the ranges lie inside the file; errors name the file and the tensor.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace pptrain
