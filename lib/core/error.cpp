#include "core/error.h"

namespace pptrain {
namespace {
int g_error_rank = -1;  // process-wide label only, never used for communication
}

void set_error_rank(int rank) { g_error_rank = rank; }
int error_rank() { return g_error_rank; }

void throw_error(const char* file, int line, std::string message) {
  if (g_error_rank >= 0) message = fmt::format("rank {}: {}", g_error_rank, message);
  throw Error(std::move(message), fmt::format("{}:{}", file, line));
}

}  // namespace pptrain
