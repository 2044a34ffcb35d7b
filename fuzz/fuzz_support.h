// Shared by the fuzz targets: the one contract every reader must keep (return, or throw
// pptrain::Error; anything else is a bug), and a private scratch directory for the readers
// that take a path. A broken contract aborts, which libFuzzer records as a crash with the
// input that caused it.
#pragma once

#include <cxxabi.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <typeinfo>

#include "core/error.h"

namespace pptrain::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\n==fuzz== contract broken: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs f; a pptrain::Error is an accepted answer to a bad input, any other exception is not
// (a yaml-cpp or nlohmann::json exception, std::length_error from a size taken on trust...).
template <class F>
bool returns_or_throws_error(F&& f) {
  try {
    f();
    return true;
  } catch (const Error&) {
    return false;
  } catch (const std::exception& e) {
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::string type = status == 0 && name != nullptr ? name : typeid(e).name();
    std::free(name);
    fail(type + " escaped (not pptrain::Error): " + e.what());
  }
}

// A directory of this process's own, removed at exit, so parallel fuzzing jobs never share
// files. Each input is written to one fixed name inside it. In /dev/shm when there is one: on
// ext4 rewriting a file starts its writeback at close, which made the readers' target 50x slower.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec) &&
                                               ::access("/dev/shm", W_OK) == 0
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    std::string pattern = (base / "pptrain-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) fail("cannot create a scratch directory");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes bytes to <dir>/<name> (replacing it) and returns the file's path.
  std::string write(const std::string& name, const std::uint8_t* data, std::size_t size) const {
    const std::string file = path_ + "/" + name;
    std::FILE* f = std::fopen(file.c_str(), "wb");
    if (f == nullptr) fail("cannot write " + file);
    if (size > 0 && std::fwrite(data, 1, size, f) != size) fail("short write to " + file);
    if (std::fclose(f) != 0) fail("cannot close " + file);
    return file;
  }

 private:
  std::string path_;
};

}  // namespace pptrain::fuzz
