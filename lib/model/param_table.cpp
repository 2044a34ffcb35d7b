#include "model/param_table.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace pptrain {

void ParamTable::add(const ParamSpec& spec) {
  if (contains(spec.name)) return;
  entries_.push_back(ParamEntry{spec, total_});
  total_ += spec.numel();
}

bool ParamTable::contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const ParamEntry& e) { return e.spec.name == name; });
}

const ParamEntry& ParamTable::find(const std::string& name) const {
  for (const ParamEntry& e : entries_) {
    if (e.spec.name == name) return e;
  }
  PPT_THROW("parameter '{}' is not held by this stage", name);
}

void init_parameter(float* dst, const ParamSpec& spec, std::uint64_t seed) {
  const std::size_t n = spec.numel();
  if (spec.init_std == 0.0) {
    std::fill(dst, dst + n, spec.init_value);
    return;
  }
  Rng rng(stream_key(seed, spec.name));
  for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(rng.normal() * spec.init_std);
}

}  // namespace pptrain
