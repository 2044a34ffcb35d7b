// The one tolerance helper for all tests: relative error ||a - b|| / ||b|| in double,
// with a named, stated tolerance at each call site.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace pptrain::test {

template <typename A, typename B>
double relative_error(const A* a, const B* b, std::size_t n) {
  double diff = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    diff += d * d;
    ref += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  if (ref == 0.0) return std::sqrt(diff);
  return std::sqrt(diff / ref);
}

template <typename A, typename B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b) {
  return a.size() == b.size() ? relative_error(a.data(), b.data(), a.size()) : INFINITY;
}

}  // namespace pptrain::test
