#include "core/error.h"

namespace pptrain {

void throw_error(const char* file, int line, std::string message) {
  throw Error(std::move(message), fmt::format("{}:{}", file, line));
}

void raise_if_any_rank_failed(int lowest_failing_rank, int my_rank, const std::optional<Error>& my_error) {
  if (lowest_failing_rank < 0) return;
  if (lowest_failing_rank == my_rank && my_error) {
    throw AllRanksError(my_error->what(), my_error->source_location(), my_rank);
  }
  throw ReportedOnAnotherRank{};
}

void throw_all_ranks_error(const char* file, int line, std::string message) {
  throw AllRanksError(std::move(message), fmt::format("{}:{}", file, line));
}

}  // namespace pptrain
