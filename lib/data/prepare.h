// Text -> token shards with the byte-level tokenizer: vocab 256, each byte of the UTF-8 text
// is one token, so no vocabulary file is needed and every input is representable.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pptrain {

inline constexpr int kByteVocabSize = 256;
// Bytes per split block: whole blocks go to train or val, so val is a spread-out sample of
// the corpus (not just its last chapters) while each block stays contiguous text.
inline constexpr std::int64_t kPrepareBlockBytes = 16 * 1024;
// llm.c's shard size: 1e8 tokens = 200 MB per shard.
inline constexpr std::int64_t kDefaultTokensPerShard = 100'000'000;

struct PrepareResult {
  std::int64_t input_bytes = 0;   // all text files together
  std::int64_t train_tokens = 0;  // train_tokens + val_tokens == input_bytes
  std::int64_t val_tokens = 0;
  std::vector<std::string> train_files;  // out_dir/train_000000.bin, ...
  std::vector<std::string> val_files;    // out_dir/val_000000.bin, ... (none if val_fraction 0)
};

// Reads the files in order as one byte stream, cuts it into kPrepareBlockBytes blocks and
// sends every k-th block (k = round(1 / val_fraction); blocks k-1, 2k-1, ...) to val, the
// rest to train. val_fraction is 0 (no val) or in (0, 0.5]. Shards hold at most
// tokens_per_shard tokens. Creates out_dir; replaces this function's own earlier output
// there (stale train_/val_ shards past the new count are removed, so a glob sees only the
// new set). Every file is checked (exists, readable, not empty) before anything is written.
PrepareResult prepare_text_shards(const std::vector<std::string>& text_files,
                                  const std::string& out_dir, double val_fraction,
                                  std::int64_t tokens_per_shard = kDefaultTokensPerShard);

// Byte tokens back to printable text for a generated sample: well-formed UTF-8, printable
// ASCII, '\n' and '\t' pass through; any other byte (control, stray continuation, token
// outside [0, 256)) becomes '?', so a sample cannot garble the terminal.
std::string decode_bytes(std::span<const int> tokens);

}  // namespace pptrain
