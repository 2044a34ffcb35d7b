// Random test inputs from the project's own generator (core/rng.h): reproducible on every
// platform, unlike std::normal_distribution. Never test on zeros.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace pptrain::test {

inline std::vector<double> randn(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> x(n);
  for (auto& v : x) v = scale * rng.normal();
  return x;
}

inline std::vector<int> random_ids(std::size_t n, int hi, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<int> ids(n);
  for (auto& id : ids) id = static_cast<int>(rng.below(static_cast<std::uint64_t>(hi)));
  return ids;
}

}  // namespace pptrain::test
