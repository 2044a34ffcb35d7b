#include "data/token_shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "core/error.h"

namespace pptrain {

// Tokens are used in place from the mapping, so the host must share the file's byte order.
static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian; a big-endian host would need a byte swap");

namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes a POSIX descriptor on every exit path, including a throw.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const void* data, std::size_t bytes, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    PPT_CHECK(n > 0, "{}: cannot write token shard: {}", path, errno_text());
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

}  // namespace

std::vector<std::string> expand_shard_glob(const std::string& pattern, const std::string& what) {
  glob_t g{};
  // No GLOB_NOCHECK: an unmatched pattern is an error here, not a literal file name. No
  // GLOB_ERR: a missing directory (data/kjv not prepared yet) is "no match", not an abort.
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> paths;
  if (rc == 0) paths.assign(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  ::globfree(&g);
  if (rc == GLOB_NOMATCH || (rc == 0 && paths.empty())) {
    PPT_THROW("{}: no file matches '{}' (run `pptrain prepare` or scripts/prepare_demo_data.sh "
              "first)",
              what, pattern);
  }
  PPT_CHECK(rc == 0, "{}: cannot expand '{}': {}", what, pattern,
            rc == GLOB_NOSPACE ? "out of memory" : "read error");
  std::sort(paths.begin(), paths.end());  // glob sorts by locale; we want byte order
  return paths;
}

TokenShard TokenShard::open(const std::string& path, int vocab_size) {
  PPT_CHECK(vocab_size > 0, "{}: vocab_size must be positive, got {}", path, vocab_size);
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  PPT_CHECK(fd.fd >= 0, "{}: cannot open token shard: {}", path, errno_text());
  struct stat st {};
  PPT_CHECK(::fstat(fd.fd, &st) == 0, "{}: cannot stat token shard: {}", path, errno_text());
  PPT_CHECK(S_ISREG(st.st_mode), "{}: not a regular file (expected an llm.c token shard)",
            path);
  const auto file_bytes = static_cast<std::int64_t>(st.st_size);
  PPT_CHECK(file_bytes > 0, "{}: file is empty (0 bytes; expected an llm.c token shard)", path);
  PPT_CHECK(file_bytes >= static_cast<std::int64_t>(kShardHeaderBytes),
            "{}: file has {} bytes, shorter than the {}-byte shard header (not an llm.c token "
            "shard, or cut off while being written)",
            path, file_bytes, kShardHeaderBytes);

  TokenShard shard;
  shard.path_ = path;
  shard.map_bytes_ = static_cast<std::size_t>(file_bytes);
  void* map = ::mmap(nullptr, shard.map_bytes_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  PPT_CHECK(map != MAP_FAILED, "{}: cannot memory-map token shard: {}", path, errno_text());
  shard.map_ = map;  // owned by `shard` from here on, so a throw below unmaps it

  std::int32_t header[kShardHeaderInts];
  std::memcpy(header, map, sizeof(header));
  PPT_CHECK(header[0] == kShardMagic, "{}: bad magic {} (expected {}: not an llm.c token shard)",
            path, header[0], kShardMagic);
  PPT_CHECK(header[1] == kShardVersion,
            "{}: unsupported shard version {} (expected {}: uint16 tokens)", path, header[1],
            kShardVersion);
  const std::int64_t n = header[2];
  PPT_CHECK(n >= 0, "{}: bad token count {} in the header", path, n);
  const std::int64_t expected_bytes = static_cast<std::int64_t>(kShardHeaderBytes) + 2 * n;
  PPT_CHECK(file_bytes >= expected_bytes,
            "{}: truncated: header says {} tokens ({} bytes) but the file has {} bytes", path, n,
            expected_bytes, file_bytes);
  PPT_CHECK(file_bytes == expected_bytes,
            "{}: header says {} tokens ({} bytes) but the file has {} bytes ({} trailing bytes)",
            path, n, expected_bytes, file_bytes, file_bytes - expected_bytes);

  shard.tokens_ = reinterpret_cast<const std::uint16_t*>(static_cast<const char*>(map) +
                                                         kShardHeaderBytes);
  shard.num_tokens_ = n;
  // One pass over the shard at open: a token id past the embedding table would otherwise
  // read out of bounds in the first forward pass, far from its cause.
  if (vocab_size <= std::numeric_limits<std::uint16_t>::max()) {
    const auto limit = static_cast<std::uint16_t>(vocab_size);
    const auto tokens = shard.tokens();
    const auto bad = std::find_if(tokens.begin(), tokens.end(),
                                  [limit](std::uint16_t t) { return t >= limit; });
    PPT_CHECK(bad == tokens.end(),
              "{}: token {} at position {} is outside the model's vocabulary (vocab_size {})",
              path, *bad, bad - tokens.begin(), vocab_size);
  }
  return shard;
}

TokenShard::TokenShard(TokenShard&& other) noexcept { *this = std::move(other); }

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    num_tokens_ = std::exchange(other.num_tokens_, 0);
  }
  return *this;
}

TokenShard::~TokenShard() { unmap(); }

void TokenShard::unmap() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
  num_tokens_ = 0;
}

void write_token_shard(const std::string& path, std::span<const std::uint16_t> tokens) {
  PPT_CHECK(tokens.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
            "{}: {} tokens do not fit one shard (the header's count is an int32)", path,
            tokens.size());
  std::int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<std::int32_t>(tokens.size());

  const std::string tmp = path + ".tmp";
  try {
    FdGuard fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    PPT_CHECK(fd.fd >= 0, "{}: cannot create token shard: {}", tmp, errno_text());
    write_all(fd.fd, header, sizeof(header), tmp);
    write_all(fd.fd, tokens.data(), tokens.size_bytes(), tmp);
    // Durable before the rename, so a crash cannot leave a complete-looking empty file.
    PPT_CHECK(::fsync(fd.fd) == 0, "{}: cannot sync token shard: {}", tmp, errno_text());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    std::remove(tmp.c_str());
    PPT_THROW("{}: cannot rename {} into place: {}", path, tmp, why);
  }
}

}  // namespace pptrain
