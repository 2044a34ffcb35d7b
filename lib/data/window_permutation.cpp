#include "data/window_permutation.h"

#include "core/error.h"
#include "core/rng.h"

namespace pptrain {

WindowPermutation::WindowPermutation(std::uint64_t n, std::uint64_t key) : n_(n), key_(key) {
  PPT_CHECK(n >= 1 && n < (std::uint64_t{1} << 62), "window permutation of {} elements", n);
  while ((std::uint64_t{1} << (2 * half_bits_)) < n) ++half_bits_;
}

std::uint64_t WindowPermutation::feistel(std::uint64_t x) const {
  const std::uint64_t mask = (std::uint64_t{1} << half_bits_) - 1;
  std::uint64_t left = x >> half_bits_, right = x & mask;
  for (std::uint64_t round = 0; round < 4; ++round) {
    std::uint64_t state = key_ ^ (round << 56) ^ right;
    const std::uint64_t mixed = splitmix64(state) & mask;
    const std::uint64_t next = left ^ mixed;
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

std::uint64_t WindowPermutation::operator()(std::uint64_t i) const {
  PPT_CHECK(i < n_, "window {} outside [0, {})", i, n_);
  std::uint64_t x = feistel(i);
  while (x >= n_) x = feistel(x);  // cycle-walking: stays a bijection on [0, n)
  return x;
}

}  // namespace pptrain
