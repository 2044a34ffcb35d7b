// One error family for the whole project. The library throws pptrain::Error; only the
// application decides to log and abort. Messages are written for the user: they name the
// file, key, rank or tensor at fault and what is wrong. The source location is kept apart
// so the app can show it with --verbose without cluttering the one-line message. The app
// adds the rank when it prints, so a message wrapped by an outer context names it once.
#pragma once

#include <fmt/format.h>

#include <optional>
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

// An error every rank of the job meets at the same point, from one collective decision (the
// agreed loss is not finite; a start-up step failed on some rank): one rank, reporting_rank,
// prints it and all ranks exit 1 cleanly, with no MPI_Abort.
class AllRanksError : public Error {
 public:
  AllRanksError(std::string message, std::string source_location, int reporting_rank = 0)
      : Error(std::move(message), std::move(source_location)), reporting_rank_(reporting_rank) {}
  int reporting_rank() const { return reporting_rank_; }

 private:
  int reporting_rank_;
};

// Thrown on the ranks that did not fail when another rank's error is reported for all of
// them (see run_on_all_ranks): the rank exits 1 without a message of its own.
struct ReportedOnAnotherRank : std::exception {
  const char* what() const noexcept override { return "failed on another rank"; }
};

// The end of a start-up step that every rank ran, once the ranks agreed which one failed
// first (lowest_failing_rank, -1 if none): returns when none failed; otherwise that rank
// throws its own error as an AllRanksError it reports, and the others ReportedOnAnotherRank.
void raise_if_any_rank_failed(int lowest_failing_rank, int my_rank, const std::optional<Error>& my_error);

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
