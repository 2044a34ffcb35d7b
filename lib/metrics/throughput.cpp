#include "metrics/throughput.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pptrain {

double median(std::vector<double> values) {
  PPT_CHECK(!values.empty(), "median of no values");
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

double tokens_per_second(std::int64_t tokens, double seconds) {
  return seconds > 0.0 ? static_cast<double>(tokens) / seconds : 0.0;
}

double model_flops_per_token(double n_params, int n_layer, int channels, int seq_len) {
  return 6.0 * n_params + 12.0 * n_layer * static_cast<double>(channels) * seq_len;
}

double mfu(double tokens_per_second, double flops_per_token, double peak_flops) {
  return peak_flops > 0.0 ? tokens_per_second * flops_per_token / peak_flops : 0.0;
}

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace pptrain
