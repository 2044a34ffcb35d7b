// pptrain: one executable per rank. `pptrain train CONFIG`, `pptrain plan CONFIG`,
// `pptrain prepare TEXT...`.
// The library throws; here errors become one log line and a non-zero exit (and, in a job
// of several ranks, MPI_Abort so that no rank is left waiting).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>
#include <optional>

#include "apps/commands.h"
#include "core/error.h"
#include "metrics/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"pptrain: pipeline-parallel GPT training"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging; errors show their source location");
  // What this build can run on: a user's first question on a new cluster.
#if PPTRAIN_CUDA_EMULATED
  const char* cuda = "emulated on host memory (tests only)";
#elif PPTRAIN_WITH_CUDA
  const char* cuda = "yes";
#else
  const char* cuda = "no (rebuild with -DPPTRAIN_CUDA=ON for runtime.device: cuda)";
#endif
#if PPTRAIN_WITH_NCCL
  const char* nccl = "yes";
#else
  const char* nccl = "no (GPU ranks talk over MPI)";
#endif
  app.set_version_flag("--version", fmt::format("pptrain {}\nCUDA backend: {}\nNCCL: {}", PPTRAIN_VERSION, cuda, nccl));
  std::map<CLI::App*, pptrain::app::Command> commands;
  auto add = [&](pptrain::app::Command (*make)(CLI::App&)) {
    pptrain::app::Command command = make(app);
    commands[app.get_subcommands({}).back()] = std::move(command);
  };
  add(pptrain::app::add_train_command);
  add(pptrain::app::add_prepare_command);
  add(pptrain::app::add_plan_command);
  add(pptrain::app::add_inspect_command);
  add(pptrain::app::add_export_command);
  CLI11_PARSE(app, argc, argv);

  std::optional<pptrain::MpiSession> session;
  // One line; in a job of several ranks it names the rank that met the error.
  auto report = [&](const pptrain::Error& e, int rank) {
    const std::string who =
        session && session->world_size() > 1 ? "rank " + std::to_string(rank) + ": " : std::string();
    std::fprintf(stderr, "pptrain: error: %s%s\n", who.c_str(), e.what());
    if (verbose) std::fprintf(stderr, "  (raised at %s)\n", e.source_location().c_str());
  };
  try {
    session.emplace(&argc, &argv);
    pptrain::setup_console_logging(verbose);
    if (session->rank() != 0) spdlog::set_level(spdlog::level::warn);
    for (CLI::App* sub : app.get_subcommands()) return commands.at(sub)(*session);
  } catch (const pptrain::ReportedOnAnotherRank&) {
    return 1;
  } catch (const pptrain::AllRanksError& e) {
    // Every rank is here; the one named in the error speaks for all of them.
    if (!session || session->rank() == e.reporting_rank()) report(e, e.reporting_rank());
    return 1;
  } catch (const pptrain::Error& e) {
    report(e, session ? session->rank() : 0);
    if (session) session->abort_job_if_parallel(1);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pptrain: internal error: %s\n", e.what());
    if (session) session->abort_job_if_parallel(2);
    return 2;
  }
  return 0;
}
