#include "metrics/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace pptrain {

void setup_console_logging(bool verbose) {
  auto console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  console->set_pattern("%v");
  auto logger = std::make_shared<spdlog::logger>("pptrain", console);
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path, bool append) {
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/!append);
  file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %v");
  spdlog::default_logger()->sinks().push_back(file);
}

}  // namespace pptrain
