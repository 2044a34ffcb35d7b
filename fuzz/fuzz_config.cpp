// Config loader: any text either loads or throws pptrain::Error (with yaml-cpp's own
// exceptions converted where they are thrown); and a config that loads must come back from
// config_to_yaml unchanged: its YAML loads again, to the same YAML text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config_loader.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pptrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  Config config;
  if (!fuzz::returns_or_throws_error([&] { config = parse_config_text(text, "fuzz.yaml", {}); })) {
    return 0;
  }
  const std::string yaml = config_to_yaml(config);
  Config again;
  try {
    again = parse_config_text(yaml, "fuzz.yaml", {});
  } catch (const Error& e) {
    fuzz::fail("config_to_yaml wrote YAML that does not load: " + std::string(e.what()) +
               "\n--- written YAML ---\n" + yaml);
  }
  const std::string yaml_again = config_to_yaml(again);
  if (yaml_again != yaml) {
    fuzz::fail("config_to_yaml does not round-trip\n--- first ---\n" + yaml +
               "--- after loading it back ---\n" + yaml_again);
  }
  return 0;
}
