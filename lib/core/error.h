// One error family for the whole project. The library throws pptrain::Error; only the
// application decides to log and abort. Messages are written for the user: they name the
// file, key, rank or tensor at fault and what is wrong. The source location is kept apart
// so the app can show it with --verbose without cluttering the one-line message. The app
// adds the rank when it prints, so a message wrapped by an outer context names it once.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace pptrain {

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string source_location)
      : std::runtime_error(std::move(message)), source_location_(std::move(source_location)) {}
  const std::string& source_location() const { return source_location_; }

 private:
  std::string source_location_;
};

[[noreturn]] void throw_error(const char* file, int line, std::string message);

}  // namespace pptrain

#define PPT_THROW(...) ::pptrain::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define PPT_CHECK(cond, ...)   \
  do {                         \
    if (!(cond)) {             \
      PPT_THROW(__VA_ARGS__);  \
    }                          \
  } while (0)
