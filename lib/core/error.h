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

// An error every rank of the job raises at the same point, from the same collective
// decision (e.g. the agreed loss is not finite): rank 0 reports it once and all ranks exit
// cleanly, with no MPI_Abort.
class AllRanksError : public Error {
 public:
  using Error::Error;
};

// Thrown on the ranks that did not fail when another rank's error is reported for all of
// them (see run_on_all_ranks): the rank exits 1 without a message of its own.
struct ReportedOnAnotherRank : std::exception {
  const char* what() const noexcept override { return "failed on another rank"; }
};

[[noreturn]] void throw_error(const char* file, int line, std::string message);
[[noreturn]] void throw_all_ranks_error(const char* file, int line, std::string message);

}  // namespace pptrain

#define PPT_THROW(...) ::pptrain::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define PPT_THROW_ALL_RANKS(...) \
  ::pptrain::throw_all_ranks_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define PPT_CHECK(cond, ...)   \
  do {                         \
    if (!(cond)) {             \
      PPT_THROW(__VA_ARGS__);  \
    }                          \
  } while (0)
