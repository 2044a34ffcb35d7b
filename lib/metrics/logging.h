// Logging set-up: one spdlog logger, to the console (rank 0 only, unless asked) and to the
// run directory's log file. The library logs through spdlog's default logger.
#pragma once

#include <string>

namespace pptrain {

void setup_console_logging(bool verbose);
void add_log_file(const std::string& path, bool append = false);

}  // namespace pptrain
