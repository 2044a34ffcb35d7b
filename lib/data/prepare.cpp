#include "data/prepare.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/error.h"
#include "data/token_shard.h"

namespace pptrain {

namespace fs = std::filesystem;

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Opens a text input, or throws one line naming the file and why it cannot be used.
FilePtr open_text_file(const std::string& path) {
  std::error_code ec;
  PPT_CHECK(!fs::is_directory(path, ec), "{}: is a directory, expected a text file", path);
  FilePtr f(std::fopen(path.c_str(), "rb"));
  PPT_CHECK(f != nullptr, "{}: cannot read text file: {}", path, std::strerror(errno));
  return f;
}

std::string shard_name(const std::string& prefix, std::size_t index) {
  return fmt::format("{}_{:06d}.bin", prefix, index);
}

// Buffers one split's tokens and writes a shard each time tokens_per_shard are collected.
class ShardWriter {
 public:
  ShardWriter(fs::path dir, std::string prefix, std::int64_t tokens_per_shard)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), tokens_per_shard_(tokens_per_shard) {}

  void add(const unsigned char* bytes, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      buffer_.push_back(bytes[i]);
      if (static_cast<std::int64_t>(buffer_.size()) == tokens_per_shard_) flush();
    }
    tokens_ += n;
  }

  void flush() {
    if (buffer_.empty()) return;
    const std::string path = (dir_ / shard_name(prefix_, files_.size())).string();
    write_token_shard(path, buffer_);
    files_.push_back(path);
    buffer_.clear();
  }

  std::int64_t tokens() const { return tokens_; }
  std::vector<std::string>& files() { return files_; }

 private:
  fs::path dir_;
  std::string prefix_;
  std::int64_t tokens_per_shard_;
  std::vector<std::uint16_t> buffer_;
  std::vector<std::string> files_;
  std::int64_t tokens_ = 0;
};

// Removes `<prefix>_NNNNNN.bin` with NNNNNN >= keep: shards of an earlier, larger run that
// a glob like data/kjv/train_*.bin would otherwise still pick up.
void remove_stale_shards(const fs::path& dir, const std::string& prefix, std::size_t keep) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::size_t digits = 6;
    if (name.size() != prefix.size() + 1 + digits + 4 || name.rfind(prefix + "_", 0) != 0 ||
        name.substr(name.size() - 4) != ".bin") {
      continue;
    }
    const std::string number = name.substr(prefix.size() + 1, digits);
    if (number.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoul(number) >= keep) fs::remove(entry.path());
  }
}

}  // namespace

PrepareResult prepare_text_shards(const std::vector<std::string>& text_files,
                                  const std::string& out_dir, double val_fraction,
                                  std::int64_t tokens_per_shard) {
  PPT_CHECK(!text_files.empty(), "prepare: no text files given");
  PPT_CHECK(val_fraction == 0.0 || (val_fraction > 0.0 && val_fraction <= 0.5),
            "prepare: val_fraction must be 0 (no validation set) or in (0, 0.5], got {}",
            val_fraction);
  PPT_CHECK(tokens_per_shard > 0 && tokens_per_shard <= std::numeric_limits<std::int32_t>::max(),
            "prepare: tokens_per_shard must be in [1, 2^31 - 1], got {}", tokens_per_shard);
  // Every k-th block goes to val; 0 means none.
  const std::int64_t k = val_fraction > 0.0 ? std::llround(1.0 / val_fraction) : 0;

  // Check every input before writing anything, so a typo in the last file name does not
  // leave a half-replaced output directory behind.
  std::int64_t total_bytes = 0;
  for (const auto& path : text_files) {
    open_text_file(path);
    std::error_code ec;
    const auto bytes = fs::file_size(path, ec);
    PPT_CHECK(!ec, "{}: cannot read text file: {}", path, ec.message());
    PPT_CHECK(bytes > 0, "{}: text file is empty (0 bytes)", path);
    total_bytes += static_cast<std::int64_t>(bytes);
  }
  PPT_CHECK(k == 0 || total_bytes >= k * kPrepareBlockBytes,
            "prepare: the text has {} bytes, fewer than {} blocks of {} bytes, so val_fraction {} "
            "would leave the validation set empty (give more text, or val_fraction 0)",
            total_bytes, k, kPrepareBlockBytes, val_fraction);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  PPT_CHECK(!ec, "{}: cannot create output directory: {}", out_dir, ec.message());

  ShardWriter train(out_dir, "train", tokens_per_shard);
  ShardWriter val(out_dir, "val", tokens_per_shard);
  std::vector<unsigned char> chunk(1 << 20);  // read size, bytes
  std::int64_t block = 0;     // index of the current 16 KiB block in the whole stream
  std::int64_t in_block = 0;  // bytes of it already routed
  for (const auto& path : text_files) {
    FilePtr f = open_text_file(path);
    while (true) {
      const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), f.get());
      PPT_CHECK(!std::ferror(f.get()), "{}: read error: {}", path, std::strerror(errno));
      if (got == 0) break;
      const unsigned char* p = chunk.data();
      auto left = static_cast<std::int64_t>(got);
      while (left > 0) {
        const std::int64_t take = std::min(left, kPrepareBlockBytes - in_block);
        ShardWriter& split = (k > 0 && block % k == k - 1) ? val : train;
        split.add(p, take);
        p += take;
        left -= take;
        in_block += take;
        if (in_block == kPrepareBlockBytes) {
          ++block;
          in_block = 0;
        }
      }
    }
  }
  train.flush();
  val.flush();
  remove_stale_shards(out_dir, "train", train.files().size());
  remove_stale_shards(out_dir, "val", val.files().size());

  PrepareResult result;
  result.input_bytes = train.tokens() + val.tokens();
  result.train_tokens = train.tokens();
  result.val_tokens = val.tokens();
  result.train_files = std::move(train.files());
  result.val_files = std::move(val.files());
  return result;
}

std::string decode_bytes(std::span<const int> tokens) {
  auto byte_at = [&](std::size_t i) { return i < tokens.size() ? tokens[i] : -1; };
  auto is_continuation = [](int b) { return b >= 0x80 && b <= 0xBF; };
  std::string out;
  out.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size();) {
    const int b = tokens[i];
    if (b == '\n' || b == '\t' || (b >= 0x20 && b <= 0x7E)) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence passes only if well-formed (RFC 3629: no overlong forms,
    // no surrogates, nothing past U+10FFFF); the second byte's range depends on the lead.
    int len = 0, lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // overlong
      if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;  // overlong
      if (b == 0xF4) hi = 0x8F;  // past U+10FFFF
    }
    bool ok = len > 0 && byte_at(i + 1) >= lo && byte_at(i + 1) <= hi;
    for (int j = 2; ok && j < len; ++j) ok = is_continuation(byte_at(i + j));
    if (!ok) {
      out.push_back('?');
      ++i;
      continue;
    }
    for (int j = 0; j < len; ++j) out.push_back(static_cast<char>(tokens[i + j]));
    i += static_cast<std::size_t>(len);
  }
  return out;
}

}  // namespace pptrain
