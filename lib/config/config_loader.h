// YAML -> Config (DESIGN.md section 10). Every error is one line,
// "<file>:<line>:<col>: <key>: <what is wrong>" (1-based), or "--set <a.b=v>: <key>: ..."
// for an override, so the user can jump straight to the fault.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace pptrain {

// Loads path, applies overrides ("a.b=value", YAML scalar/flow syntax for value), checks
// types, ranges and single-config cross-field rules. Throws pptrain::Error on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same for text already in memory; source_name stands in for the file in messages.
Config parse_config_text(const std::string& yaml_text, const std::string& source_name,
                         const std::vector<std::string>& overrides = {});

// YAML text of the fully resolved config (every field, defaults included) that loads back
// to an equal Config. It depends on the values only, so two equal configs give equal text.
std::string config_to_yaml(const Config& config);

// Ranges and single-config cross-field rules; the loaders call it, and code that builds a
// Config by hand can too. Names the keys involved, at their origin (Config::where).
void check_config(const Config& config);

// Checks that need the launch: pipeline.stages x parallel.data == world_size.
void check_config_for_world(const Config& config, int world_size);

}  // namespace pptrain
