// bf16 <-> fp32 on the host, bit-exact with the device's __float2bfloat16_rn and
// __bfloat162float: for tests (rounding CPU-twin inputs to what the GPU sees) and for
// checkpoint I/O. A bf16 value is the high 16 bits of an fp32 bit pattern.
#pragma once

#include <cstdint>
#include <cstring>

namespace pptrain::kernels::cuda {

inline float bf16_bits_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN, infinities stay infinite.
inline std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  }
  const std::uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

inline float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace pptrain::kernels::cuda
