// A seeded pseudo-random permutation of [0, n) evaluated one index at a time, in O(1) memory
// and time: a 4-round Feistel network on the smallest even-bit square >= n, cycle-walked
// back into range (fewer than 4 steps on average, since that square is < 4n). The train
// sampler draws each epoch's window order from it, so corpora of billions of windows need no
// shuffled index in memory.
#pragma once

#include <cstdint>

namespace pptrain {

class WindowPermutation {
 public:
  WindowPermutation(std::uint64_t n, std::uint64_t key);
  std::uint64_t size() const { return n_; }
  // The image of i in [0, n): a bijection for each (n, key).
  std::uint64_t operator()(std::uint64_t i) const;

 private:
  std::uint64_t feistel(std::uint64_t x) const;
  std::uint64_t n_, key_;
  int half_bits_ = 1;  // the network permutes 2 * half_bits_ bits
};

}  // namespace pptrain
