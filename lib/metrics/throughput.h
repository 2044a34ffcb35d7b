// The one place that defines throughput metrics, so a log line, metrics.jsonl and the
// benchmark tables agree.
#pragma once

#include <cstdint>
#include <string>

namespace pptrain {

// Tokens processed (global batch: dp x m x B x T) per wall-clock second.
double tokens_per_second(std::int64_t tokens, double seconds);

// "1h02m", "3m07s", "12s": for ETAs and durations.
std::string format_duration(double seconds);

}  // namespace pptrain
