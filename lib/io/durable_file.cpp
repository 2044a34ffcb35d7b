#include "io/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace pptrain {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  PPT_CHECK(fd >= 0, "cannot open '{}' to sync it: {}", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  PPT_CHECK(rc == 0, "fsync of '{}' failed: {}", path, std::strerror(err));
}

void rename_durably(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  PPT_CHECK(!ec, "cannot rename '{}' to '{}': {}", from, to, ec.message());
  std::filesystem::path parent = std::filesystem::path(to).parent_path();
  fsync_path(parent.empty() ? "." : parent.string());
}

void write_file_durably(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PPT_CHECK(out.good(), "cannot write '{}'", tmp);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    PPT_CHECK(out.good(), "failed writing '{}' (disk full?)", tmp);
  }
  fsync_path(tmp);
  rename_durably(tmp, path);
}

}  // namespace pptrain
