// The subcommands of the pptrain executable. Each registers its options on the CLI11 app
// and returns the function that runs it; main() owns MPI and turns errors into exit codes.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "comm/mpi_session.h"

namespace pptrain::app {

using Command = std::function<int(MpiSession&)>;

Command add_train_command(CLI::App& app);
Command add_prepare_command(CLI::App& app);
Command add_plan_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_export_command(CLI::App& app);

}  // namespace pptrain::app
