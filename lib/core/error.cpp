#include "core/error.h"

namespace pptrain {

void throw_error(const char* file, int line, std::string message) {
  throw Error(std::move(message), fmt::format("{}:{}", file, line));
}

void throw_all_ranks_error(const char* file, int line, std::string message) {
  throw AllRanksError(std::move(message), fmt::format("{}:{}", file, line));
}

}  // namespace pptrain
