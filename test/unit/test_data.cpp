// lib/data: token shards (format checks and their messages), the dataset's samplers (pure
// functions of their arguments, DESIGN.md 6a) and byte-level text preparation.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "data/token_shard.h"
#include "data/window_permutation.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace pptrain;
using Catch::Matchers::Contains;
using pptrain::test::TempDir;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A raw shard with a chosen header, for the corruption cases write_token_shard cannot make.
std::string raw_shard(std::int32_t magic, std::int32_t version, std::int32_t n,
                      const std::vector<std::uint16_t>& tokens) {
  std::vector<std::int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = n;
  std::string out(reinterpret_cast<const char*>(header.data()), 1024);
  out.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
  return out;
}

std::vector<std::uint16_t> iota_tokens(int n, int first = 0) {
  std::vector<std::uint16_t> t(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = static_cast<std::uint16_t>(first + i);
  return t;
}

std::string error_of(const std::string& path, int vocab_size) {
  try {
    TokenShard::open(path, vocab_size);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("token shard: write then open round-trips the tokens", "[data]") {
  TempDir dir;
  const auto tokens = iota_tokens(3000, 40000);  // values past 32767: uint16, not int16
  write_token_shard(dir / "a.bin", tokens);
  CHECK_FALSE(fs::exists(dir / "a.bin.tmp"));
  CHECK(fs::file_size(dir / "a.bin") == 1024 + 2 * tokens.size());

  TokenShard shard = TokenShard::open(dir / "a.bin", 65536);
  CHECK(shard.path() == dir / "a.bin");
  REQUIRE(shard.size() == 3000);
  CHECK(std::equal(tokens.begin(), tokens.end(), shard.tokens().begin()));

  TokenShard moved = std::move(shard);
  CHECK(moved.size() == 3000);
  CHECK(moved.tokens()[2999] == 42999);

  write_token_shard(dir / "empty.bin", {});  // zero tokens is a valid (if useless) shard
  CHECK(TokenShard::open(dir / "empty.bin", 256).size() == 0);
}

TEST_CASE("token shard: each corruption has its own message", "[data]") {
  TempDir dir;
  const auto four = iota_tokens(4);
  write_bytes(dir / "magic.bin", raw_shard(12345, 1, 4, four));
  write_bytes(dir / "version.bin", raw_shard(20240520, 2, 4, four));
  write_bytes(dir / "truncated.bin", raw_shard(20240520, 1, 1000, iota_tokens(500)));
  write_bytes(dir / "trailing.bin", raw_shard(20240520, 1, 4, four) + "xyz");
  write_bytes(dir / "negative.bin", raw_shard(20240520, 1, -5, four));
  write_bytes(dir / "short.bin", raw_shard(20240520, 1, 0, {}).substr(0, 512));
  write_bytes(dir / "empty.bin", "");
  auto oov = iota_tokens(20);
  oov[17] = 50256;
  write_token_shard(dir / "oov.bin", oov);

  CHECK(error_of(dir / "magic.bin", 256) ==
        dir / "magic.bin" + ": bad magic 12345 (expected 20240520: not an llm.c token shard)");
  CHECK_THAT(error_of(dir / "version.bin", 256),
             Contains("version.bin: unsupported shard version 2 (expected 1"));
  CHECK(error_of(dir / "truncated.bin", 256) ==
        dir / "truncated.bin" +
            ": truncated: header says 1000 tokens (3024 bytes) but the file has 2024 bytes");
  CHECK_THAT(error_of(dir / "trailing.bin", 256),
             Contains("header says 4 tokens (1032 bytes) but the file has 1035 bytes (3 trailing bytes)"));
  CHECK_THAT(error_of(dir / "negative.bin", 256), Contains("bad token count -5"));
  CHECK_THAT(error_of(dir / "short.bin", 256),
             Contains("short.bin: file has 512 bytes, shorter than the 1024-byte shard header"));
  CHECK_THAT(error_of(dir / "empty.bin", 256), Contains("empty.bin: file is empty (0 bytes"));
  CHECK_THAT(error_of(dir / "missing.bin", 256),
             Contains("missing.bin: cannot open token shard: No such file or directory"));
  CHECK_THAT(error_of(dir.path.string(), 256), Contains("not a regular file"));
  CHECK(error_of(dir / "oov.bin", 256) ==
        dir / "oov.bin" +
            ": token 50256 at position 17 is outside the model's vocabulary (vocab_size 256)");
  CHECK(TokenShard::open(dir / "oov.bin", 50257).size() == 20);  // fine for GPT-2's vocab
}

TEST_CASE("token shard: committed bad-shard fixtures give their messages", "[data]") {
  const std::string fixtures = std::string(PPTRAIN_TEST_DATA_DIR) + "/shards/";
  struct Case {
    const char* file;
    const char* message;  // substring of the error; empty: must open
  };
  const Case cases[] = {
      {"valid.bin", ""},
      {"bad_magic.bin", "bad_magic.bin: bad magic 12345 (expected 20240520"},
      {"wrong_version.bin", "wrong_version.bin: unsupported shard version 2"},
      {"truncated.bin", "truncated.bin: truncated: header says 1000 tokens (3024 bytes) but the file has 1044 bytes"},
      {"trailing_bytes.bin", "(6 trailing bytes)"},
      {"out_of_vocab.bin", "out_of_vocab.bin: token 50256 at position 17 is outside the model's vocabulary (vocab_size 256)"},
      {"short_header.bin", "short_header.bin: file has 100 bytes, shorter than the 1024-byte shard header"},
      {"empty.bin", "empty.bin: file is empty"},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const std::string path = fixtures + c.file;
    REQUIRE(fs::exists(path));
    if (std::string(c.message).empty()) {
      CHECK(TokenShard::open(path, 256).size() == 8);
    } else {
      CHECK_THAT(error_of(path, 256), Contains(c.message));
    }
  }
}

TEST_CASE("shard glob: sorted matches, and a clear error when nothing matches", "[data]") {
  TempDir dir;
  for (const char* name : {"train_000010.bin", "train_000000.bin", "train_000002.bin", "val_000000.bin"}) {
    write_token_shard(dir / name, iota_tokens(2));
  }
  const auto paths = expand_shard_glob(dir / "train_*.bin", "cfg.yaml:3:10: data.train");
  REQUIRE(paths.size() == 3);
  CHECK(paths[0] == dir / "train_000000.bin");
  CHECK(paths[1] == dir / "train_000002.bin");
  CHECK(paths[2] == dir / "train_000010.bin");

  const std::string pattern = dir / "nothing_*.bin";
  REQUIRE_THROWS_WITH(expand_shard_glob(pattern, "cfg.yaml:4:8: data.val"),
                      "cfg.yaml:4:8: data.val: no file matches '" + pattern +
                          "' (run `pptrain prepare` or scripts/prepare_demo_data.sh first)");
  REQUIRE_THROWS_WITH(TokenDataset::open(pattern, 256, "data.val"), Contains("no file matches"));
  CHECK_THROWS_WITH(expand_shard_glob(dir / "not_prepared/train_*.bin", "data.train"),
                    Contains("data.train: no file matches"));
}

TEST_CASE("window permutation: a bijection for every size, seeded", "[data]") {
  for (std::uint64_t n : {1u, 2u, 3u, 4u, 5u, 16u, 17u, 100u, 1000u, 4097u}) {
    INFO("n = " << n);
    const WindowPermutation p(n, 42), q(n, 43);
    std::set<std::uint64_t> seen;
    bool differs = false;
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t x = p(i);
      REQUIRE(x < n);
      seen.insert(x);
      differs = differs || x != q(i);
    }
    CHECK(seen.size() == n);
    if (n >= 5) CHECK(differs);  // another key, another order
  }
  REQUIRE_THROWS_WITH(WindowPermutation(10, 0)(10), Contains("window 10 outside [0, 10)"));
}

TEST_CASE("dataset: shards form one stream; training reads each window once per epoch", "[data]") {
  TempDir dir;
  // Token value == stream position, so a sequence reveals where it was cut from.
  write_token_shard(dir / "s_0.bin", iota_tokens(700, 0));
  write_token_shard(dir / "s_1.bin", iota_tokens(0));
  write_token_shard(dir / "s_2.bin", iota_tokens(300, 700));
  const TokenDataset ds = TokenDataset::open(dir / "s_*.bin", 65536, "data.train");
  REQUIRE(ds.num_tokens() == 1000);
  REQUIRE(ds.shards().size() == 3);

  const int B = 3, T = 64, per_step = 6;  // 2 micro-batches (or replicas) of 3 per step
  REQUIRE(ds.num_windows(T) == 15);      // floor(999 / 64)
  auto batch = [&](std::uint64_t seed, std::int64_t step, std::int64_t first) {
    std::vector<int> x(static_cast<std::size_t>(B * T)), y(x.size());
    ds.fill_train_batch(seed, step * per_step, per_step, first, B, T, x.data(), y.data());
    return std::make_pair(x, y);
  };
  const auto base = batch(7, 3, 3);
  CHECK(batch(7, 3, 3) == base);  // a pure function: a resumed run reads the same
  CHECK(batch(8, 3, 3).first != base.first);
  CHECK(batch(7, 4, 3).first != base.first);
  CHECK(batch(7, 3, 0).first != base.first);

  // 5 steps of 6 sequences = 2 epochs of 15 windows: each window exactly twice, once per
  // epoch, cut at multiples of T and contiguous across the shard boundary at 700.
  std::map<int, int> count;
  std::vector<int> epoch_order[2];
  for (int step = 0; step < 5; ++step) {
    for (int first = 0; first < per_step; first += B) {
      const auto [x, y] = batch(1, step, first);
      for (int i = 0; i < B; ++i) {
        const int start = x[static_cast<std::size_t>(i * T)];
        REQUIRE(start % T == 0);
        REQUIRE(start + T <= 999);
        ++count[start];
        epoch_order[(step * per_step + first + i) / 15].push_back(start);
        for (int t = 0; t < T; ++t) {
          const auto k = static_cast<std::size_t>(i * T + t);
          REQUIRE(x[k] == start + t);
          REQUIRE(y[k] == start + t + 1);
        }
      }
    }
  }
  CHECK(count.size() == 15);
  for (const auto& [start, n] : count) CHECK(n == 2);
  CHECK(epoch_order[0] != epoch_order[1]);  // each epoch shuffles anew
  REQUIRE_THROWS_WITH(ds.fill_train_batch(1, 0, per_step, 4, B, T, nullptr, nullptr),
                      Contains("sequences [4, 7) of a step outside its 6 sequences"));
}

TEST_CASE("dataset: a stream of exactly T+1 tokens, and one too short", "[data]") {
  TempDir dir;
  const int T = 16;
  write_token_shard(dir / "tiny.bin", iota_tokens(T + 1, 100));
  const TokenDataset ds = TokenDataset::open(dir / "tiny.bin", 256, "data.train");
  std::vector<int> x(4 * T), y(4 * T);
  for (int step = 0; step < 20; ++step) {
    ds.fill_train_batch(0, step, 4, 0, 4, T, x.data(), y.data());
    for (int k = 0; k < 4 * T; ++k) {
      REQUIRE(x[static_cast<std::size_t>(k)] == 100 + k % T);  // only window 0 exists
      REQUIRE(y[static_cast<std::size_t>(k)] == 101 + k % T);
    }
  }
  REQUIRE_THROWS_WITH(ds.fill_train_batch(0, 0, 1, 0, 1, T + 1, x.data(), y.data()),
                      Contains("data.train: '" + dir / "tiny.bin" +
                               "' holds 17 tokens in 1 shard(s), but seq_len 17 needs at least 18"));
  REQUIRE_THROWS_WITH(ds.num_eval_batches(1, 40), Contains("needs at least 41"));
}

TEST_CASE("dataset: eval batches are consecutive non-overlapping windows", "[data]") {
  TempDir dir;
  write_token_shard(dir / "val_0.bin", iota_tokens(60));
  write_token_shard(dir / "val_1.bin", iota_tokens(41, 60));
  const TokenDataset ds = TokenDataset::open(dir / "val_*.bin", 65536, "data.val");
  REQUIRE(ds.num_tokens() == 101);
  const int B = 3, T = 10;  // (101 - 1) / 10 = 10 windows -> 4 batches, the last one wraps
  REQUIRE(ds.num_eval_batches(B, T) == 4);
  std::vector<int> x(B * T), y(B * T);
  const int expected_starts[4][3] = {{0, 10, 20}, {30, 40, 50}, {60, 70, 80}, {90, 0, 10}};
  for (int k = 0; k < 4; ++k) {
    ds.fill_eval_batch(k, B, T, x.data(), y.data());
    for (int j = 0; j < B; ++j) {
      for (int t = 0; t < T; ++t) {
        const auto i = static_cast<std::size_t>(j * T + t);
        REQUIRE(x[i] == expected_starts[k][j] + t);
        REQUIRE(y[i] == expected_starts[k][j] + t + 1);
      }
    }
  }
  CHECK_THROWS_WITH(ds.fill_eval_batch(4, B, T, x.data(), y.data()), Contains("out of range"));
}

TEST_CASE("prepare: byte tokens split exactly into train and val blocks", "[data]") {
  TempDir dir;
  // Two files, 400000 bytes in all: 24.4 blocks of 16 KiB, so blocks 19 go to val (k = 20).
  std::string text;
  for (int i = 0; i < 400000; ++i) text.push_back(static_cast<char>((i * 7 + i / 1000) % 256));
  write_bytes(dir / "a.txt", text.substr(0, 123457));
  write_bytes(dir / "b.txt", text.substr(123457));
  const std::string out = dir / "shards";
  // A stale shard from an earlier, bigger run must not survive into the glob.
  fs::create_directories(out);
  write_token_shard(out + "/train_000099.bin", iota_tokens(3));

  const PrepareResult r = prepare_text_shards({dir / "a.txt", dir / "b.txt"}, out, 0.05, 100000);
  CHECK(r.input_bytes == 400000);
  CHECK(r.train_tokens + r.val_tokens == 400000);
  CHECK(r.val_tokens == kPrepareBlockBytes);  // exactly one block of 24
  CHECK(r.train_files.size() == 4);           // 383616 tokens at 100000 per shard
  REQUIRE(r.val_files.size() == 1);
  CHECK(r.train_files[0] == out + "/train_000000.bin");
  CHECK(r.val_files[0] == out + "/val_000000.bin");
  CHECK_FALSE(fs::exists(out + "/train_000099.bin"));

  // Re-interleave the blocks: the splits hold the original bytes, in order, none lost.
  const TokenDataset train = TokenDataset::open(out + "/train_*.bin", kByteVocabSize, "train");
  const TokenDataset val = TokenDataset::open(out + "/val_*.bin", kByteVocabSize, "val");
  std::string stream;
  std::int64_t ti = 0, vi = 0;
  auto token_at = [](const TokenDataset& ds, std::int64_t pos) {
    for (const auto& s : ds.shards()) {
      if (pos < s.size()) return s.tokens()[static_cast<std::size_t>(pos)];
      pos -= s.size();
    }
    return std::uint16_t{999};
  };
  for (std::int64_t pos = 0; pos < 400000; ++pos) {
    const bool to_val = (pos / kPrepareBlockBytes) % 20 == 19;
    stream.push_back(static_cast<char>(to_val ? token_at(val, vi++) : token_at(train, ti++)));
  }
  CHECK(stream == text);

  const PrepareResult all_train = prepare_text_shards({dir / "a.txt"}, dir / "nv", 0.0, 1 << 20);
  CHECK(all_train.train_tokens == 123457);
  CHECK(all_train.val_files.empty());
  CHECK(read_bytes(all_train.train_files[0]).substr(1024, 4) == std::string("\0\0\x07\0", 4));
}

TEST_CASE("prepare: unusable inputs are named in the error", "[data]") {
  TempDir dir;
  write_bytes(dir / "empty.txt", "");
  write_bytes(dir / "small.txt", "In the beginning");
  const std::string out = dir / "out";
  CHECK_THROWS_WITH(prepare_text_shards({dir / "small.txt", dir / "missing.txt"}, out, 0.0),
                    Contains("missing.txt: cannot read text file: No such file or directory"));
  CHECK_FALSE(fs::exists(out));  // nothing written before every input is checked
  CHECK_THROWS_WITH(prepare_text_shards({dir / "empty.txt"}, out, 0.0),
                    Contains("empty.txt: text file is empty"));
  CHECK_THROWS_WITH(prepare_text_shards({dir.path.string()}, out, 0.0), Contains("is a directory"));
  CHECK_THROWS_WITH(prepare_text_shards({dir / "small.txt"}, out, 0.7), Contains("val_fraction must be"));
  CHECK_THROWS_WITH(prepare_text_shards({dir / "small.txt"}, out, 0.05),
                    Contains("would leave the validation set empty"));
  CHECK(prepare_text_shards({dir / "small.txt"}, out, 0.0).train_tokens == 16);
}

TEST_CASE("decode_bytes keeps text and UTF-8, masks the rest", "[data]") {
  auto decode = [](const std::vector<int>& t) { return decode_bytes(t); };
  CHECK(decode({'H', 'i', '\n', '\t', '!'}) == "Hi\n\t!");
  CHECK(decode({0, 7, 27, 127, 'a'}) == "????a");
  CHECK(decode({0xC3, 0xA9}) == "\xC3\xA9");              // é
  CHECK(decode({0xE2, 0x80, 0x94, 'x'}) == "\xE2\x80\x94x");  // em dash
  CHECK(decode({0x80, 'a', 0xC3}) == "?a?");              // stray continuation, cut sequence
  CHECK(decode({0xC0, 0xAF}) == "??");                    // overlong '/'
  CHECK(decode({0xED, 0xA0, 0x80}) == "???");             // surrogate
  CHECK(decode({300, -1, 'z'}) == "??z");
}
