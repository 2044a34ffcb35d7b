// The one table of config keys: section, name and the member each fills. The loader, the
// writer and error messages all walk it, so a new field is added here (and in config.h)
// and nowhere else.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "config/config.h"

namespace pptrain {

using ConfigFieldRef = std::variant<int*, double*, bool*, std::string*, std::uint64_t*,
                                    std::vector<int>*, std::vector<double>*>;

struct ConfigField {
  const char* section;  // "training"
  const char* name;     // "lr"
  ConfigFieldRef ref;   // points into the Config passed to config_fields()
  std::string key() const { return std::string(section) + "." + name; }
};

// Every field of config, in YAML order: sections as in DESIGN.md section 10, keys as in
// config.h. The pointers are into config, so pass a copy when only reading a const one.
std::vector<ConfigField> config_fields(Config& config);

// The YAML text of one value as the writer prints it: doubles in shortest round-trip form,
// strings double-quoted, lists in flow style.
std::string config_field_text(const ConfigFieldRef& ref);

}  // namespace pptrain
