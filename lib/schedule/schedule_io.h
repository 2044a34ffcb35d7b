// Text and CSV forms of a schedule; both parse back to the same actions.
//
// Text (golden files, `pptrain plan`): a header line, then one line per rank, in order:
//   schedule 1f1b ranks=4 virtual_stages=1 micro_batches=8
//   rank 0: 0F0 0F1 0F2 0F3 0B0 ...
//   rank 1: ...
// It carries the name and shape, so parse_schedule_text(to_text(s)) == s. A V-placed schedule
// (zbv) ends its header with " placement=vee"; without the word the placement is loop.
//
// CSV (user schedules, `pipeline.schedule: csv:<path>`): row r is rank r's actions in order,
// one action per cell, no rank column and no header, as PyTorch's pipelining writes them
// (_dump_csv), so its schedules load unchanged. Empty cells are skipped (PyTorch writes idle
// slots as empty cells); blank lines are skipped; `#` starts a comment to the end of the
// line. A rank with no actions is a row of one empty cell (","). Compute-only (F, B, I, W)
// and lowered (with SEND/RECV) schedules are both accepted; validate() decides the rest.
// The shape (p, v, m) and the placement come from the caller, not from the file (a
// `csv:` config schedule's is pipeline.placement).
//
// Parsers check what one line can show (a bad token, a stage on the wrong rank, a stage or
// micro-batch out of range) and name source:line and the token; whole-schedule properties
// are the validator's.
#pragma once

#include <string>
#include <string_view>

#include "schedule/schedule.h"

namespace pptrain::schedule {

std::string to_text(const Schedule& schedule);
Schedule parse_schedule_text(std::string_view text, std::string_view source_name);
Schedule load_schedule_text(const std::string& path);

std::string to_csv(const Schedule& schedule);
// The result is named "csv:<source_name>".
Schedule parse_schedule_csv(std::string_view text, std::string_view source_name, int ranks,
                            int virtual_stages, int micro_batches,
                            StagePlacement placement = StagePlacement::Loop);
Schedule load_schedule_csv(const std::string& path, int ranks, int virtual_stages,
                           int micro_batches, StagePlacement placement = StagePlacement::Loop);

}  // namespace pptrain::schedule
