// The run directory: <logging.dir>/<logging.name or the config file's stem>. Holds
// config.yaml (the resolved config), metrics.jsonl, log.txt and, later, checkpoints/.
#pragma once

#include <string>

#include "config/config.h"

namespace pptrain {

std::string run_directory_path(const Config& config);
// Creates the directory and writes config.yaml; returns the path.
std::string create_run_directory(const Config& config);

}  // namespace pptrain
