// llm.c's token shard: a 1024-byte header of 256 little-endian int32 ([0] magic 20240520,
// [1] version 1, [2] token count n, the rest zero), then n uint16 tokens. GPT-2 BPE shards
// made by llm.c's scripts and the byte-level shards of `pptrain prepare` share this format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pptrain {

inline constexpr std::int32_t kShardMagic = 20240520;
inline constexpr std::int32_t kShardVersion = 1;
inline constexpr std::size_t kShardHeaderInts = 256;
inline constexpr std::size_t kShardHeaderBytes = kShardHeaderInts * sizeof(std::int32_t);  // 1024

// The files matching a glob(3) pattern, sorted by name (so train_000000.bin comes first).
// `what` names where the pattern came from (e.g. "configs/demo.yaml:12:10: data.train") and
// starts the error message when nothing matches.
std::vector<std::string> expand_shard_glob(const std::string& pattern, const std::string& what);

// A read-only view of one shard, memory-mapped so that a multi-GB shard costs no copy and
// only the pages the sampler touches are read. Move-only; unmaps on destruction.
class TokenShard {
 public:
  // Checks the size, magic, version, that the file holds exactly the tokens the header
  // announces, and that every token is < vocab_size. Throws pptrain::Error naming the file.
  static TokenShard open(const std::string& path, int vocab_size);

  TokenShard() = default;
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  const std::string& path() const { return path_; }
  std::int64_t size() const { return num_tokens_; }  // tokens, not bytes
  std::span<const std::uint16_t> tokens() const {
    return {tokens_, static_cast<std::size_t>(num_tokens_)};
  }

 private:
  void unmap();

  std::string path_;
  void* map_ = nullptr;        // the whole file, header included
  std::size_t map_bytes_ = 0;
  const std::uint16_t* tokens_ = nullptr;  // map_ + 1024 bytes
  std::int64_t num_tokens_ = 0;
};

// Writes a shard to path + ".tmp" and renames it over path, so a concurrent reader sees
// either the old file or the complete new one, never half a file. At most INT32_MAX tokens
// (the header's count is an int32).
void write_token_shard(const std::string& path, std::span<const std::uint16_t> tokens);

}  // namespace pptrain
