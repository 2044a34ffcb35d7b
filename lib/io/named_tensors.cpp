#include "io/named_tensors.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "core/error.h"

namespace pptrain {

void load_stage_tensors(const NamedTensors& tensors, const std::string& prefix, const ParamTable& table,
                        float* dst, const std::string& source) {
  for (const ParamEntry& e : table.entries()) {
    const std::string name = prefix + e.spec.name;
    auto it = tensors.find(name);
    PPT_CHECK(it != tensors.end(), "{}: has no tensor '{}'", source, name);
    const std::vector<std::int64_t> want(e.spec.shape.begin(), e.spec.shape.end());
    PPT_CHECK(it->second.shape == want, "{}: tensor '{}' has shape [{}], the model needs [{}]", source,
              name, fmt::join(it->second.shape, ", "), fmt::join(want, ", "));
    std::copy(it->second.values.begin(), it->second.values.end(), dst + e.offset);
  }
}

void add_stage_tensors(NamedTensors& out, const std::string& prefix, const ParamTable& table, const float* src) {
  for (const ParamEntry& e : table.entries()) {
    LoadedTensor t;
    t.shape.assign(e.spec.shape.begin(), e.spec.shape.end());
    t.values.assign(src + e.offset, src + e.offset + e.spec.numel());
    out[prefix + e.spec.name] = std::move(t);
  }
}

}  // namespace pptrain
