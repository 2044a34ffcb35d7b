#include "io/run_directory.h"

#include <filesystem>
#include <fstream>

#include "config/config_loader.h"
#include "core/error.h"

namespace pptrain {

namespace fs = std::filesystem;

std::string run_directory_path(const Config& config) {
  std::string name = config.logging.name;
  if (name.empty()) name = config.source_path.empty() ? "run" : fs::path(config.source_path).stem().string();
  return (fs::path(config.logging.dir) / name).string();
}

std::string create_run_directory(const Config& config) {
  const std::string dir = run_directory_path(config);
  std::error_code ec;
  fs::create_directories(dir, ec);
  PPT_CHECK(!ec, "{}: cannot create run directory '{}': {}", config.where("logging.dir"), dir,
            ec.message());
  const std::string path = (fs::path(dir) / "config.yaml").string();
  std::ofstream out(path, std::ios::trunc);
  out << config_to_yaml(config);
  out.close();
  PPT_CHECK(out.good(), "cannot write '{}'", path);
  return dir;
}

}  // namespace pptrain
