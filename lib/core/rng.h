// Counter-free, platform-independent random numbers. std::normal_distribution is
// implementation-defined, so we draw our own: xoshiro256** seeded through splitmix64, and
// Box-Muller in double. Every stream is keyed by (seed, name, index) so a value never
// depends on how many values were drawn elsewhere (DESIGN.md 6a).
#pragma once

#include <cstdint>
#include <string_view>

namespace pptrain {

std::uint64_t splitmix64(std::uint64_t& state);
// FNV-1a of the text, mixed with the seed and index: the key of one random stream.
std::uint64_t stream_key(std::uint64_t seed, std::string_view name, std::uint64_t index = 0);

class Rng {
 public:
  explicit Rng(std::uint64_t key);
  std::uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // mean 0, std 1
  std::uint64_t below(std::uint64_t n);  // [0, n), n > 0

 private:
  std::uint64_t s_[4];
  double spare_normal_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace pptrain
