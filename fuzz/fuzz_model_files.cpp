// Model and checkpoint readers: every input is written as <dir>/manifest.json and read by all
// three readers of untrusted files in lib/io: the checkpoint manifest, safetensors and llm.c
// model files. Each must return or throw pptrain::Error. One file for all three (rather than
// a selector byte) lets the seed files of every format be used as they are.
//
// A safetensors file starts with the byte length of its JSON header, so almost any mutation
// of the JSON breaks that length and stops at the first check. The input is therefore also
// read as safetensors once more with a length prefix made for it: the bytes before the first
// NUL are the header, those after it the tensor data.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "io/checkpoint.h"
#include "io/llmc_model.h"
#include "io/safetensors.h"

namespace {

void check_tensor(const std::string& name, const pptrain::LoadedTensor& t) {
  std::size_t count = 1;
  for (std::int64_t d : t.shape) count *= static_cast<std::size_t>(d);
  if (count != t.values.size()) {
    pptrain::fuzz::fail("tensor '" + name + "': shape does not match its value count");
  }
}

void read_as_safetensors(const std::string& path) {
  pptrain::fuzz::returns_or_throws_error([&] {
    for (const auto& [name, tensor] : pptrain::read_safetensors(path).tensors) {
      check_tensor(name, tensor);
    }
  });
}

// <8-byte little-endian header length><header = input up to the first NUL><the rest>.
std::vector<std::uint8_t> with_header_length(const std::uint8_t* data, std::size_t size) {
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::uint64_t header = nul != nullptr ? static_cast<std::uint64_t>(nul - data) : size;
  std::vector<std::uint8_t> file(8);
  for (int i = 0; i < 8; ++i) file[i] = static_cast<std::uint8_t>(header >> (8 * i));
  file.insert(file.end(), data, data + header);
  if (nul != nullptr) file.insert(file.end(), nul + 1, data + size);
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pptrain;
  static const fuzz::ScratchDir scratch;
  const std::string path = scratch.write("manifest.json", data, size);
  fuzz::returns_or_throws_error([&] {
    const CheckpointManifest m = read_checkpoint_manifest(scratch.path());
    if (m.stages.empty()) fuzz::fail("accepted a manifest without stage files");
  });
  read_as_safetensors(path);
  fuzz::returns_or_throws_error([&] {
    for (const auto& [name, tensor] : read_llmc_model(path).tensors) check_tensor(name, tensor);
  });
  const std::vector<std::uint8_t> framed = with_header_length(data, size);
  read_as_safetensors(scratch.write("framed.safetensors", framed.data(), framed.size()));
  return 0;
}
