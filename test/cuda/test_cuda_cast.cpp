// [cuda] fp32 <-> bf16 casts: round-to-nearest-even against the host conversion
// (kernels/cuda/bf16_host.h) bit for bit, every bf16 pattern back to fp32, and the statistics
// of stochastic rounding.
#include <cmath>
#include <cstring>
#include <limits>

#include "cuda_test_util.h"

namespace {

using namespace pptrain::test::cuda;

std::vector<std::uint16_t> to_bf16_on_gpu(const std::vector<float>& x, bool stochastic,
                                          std::uint64_t seed = 0) {
  DeviceArray d_x = DeviceArray::from(x, DType::F32);
  kc::DeviceBuffer out(device_tracker(), pptrain::MemCategory::Activations, x.size() * 2);
  out.poison();
  if (stochastic) {
    kc::cast_f32_to_bf16_stochastic(out.as<std::uint16_t>(), d_x.f32(), x.size(), seed, {});
  } else {
    kc::cast_f32_to_bf16(out.as<std::uint16_t>(), d_x.f32(), x.size(), {});
  }
  kc::synchronize({});
  std::vector<std::uint16_t> bits(x.size());
  out.copy_to_host(bits.data(), bits.size() * 2);
  return bits;
}

}  // namespace

TEST_CASE("CUDA fp32 -> bf16 rounds to nearest even like the host", "[cuda]") {
  auto x = randn(100003, 1000);
  for (std::size_t i = 0; i < x.size(); i += 7) x[i] *= 1e-30f;  // small and subnormal-ish
  for (std::size_t i = 3; i < x.size(); i += 11) x[i] *= 1e30f;   // large
  const float specials[] = {0.0f, -0.0f, 1.0f, 1.00390625f /* tie */, 1.01171875f /* tie */,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 1e-40f /* subnormal */,
                            3.4e38f /* rounds to inf */, std::numeric_limits<float>::max()};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  const auto bits = to_bf16_on_gpu(x, false);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      mismatches += !std::isnan(kc::bf16_bits_to_float(bits[i]));
    } else {
      mismatches += bits[i] != kc::float_to_bf16_bits(x[i]);
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("CUDA bf16 -> fp32 is exact for every bf16 pattern", "[cuda]") {
  std::vector<std::uint16_t> all(65536);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  kc::DeviceBuffer src(device_tracker(), pptrain::MemCategory::Activations, all.size() * 2);
  src.copy_from_host(all.data(), all.size() * 2);
  DeviceArray dst(all.size(), DType::F32);
  dst.poison();
  kc::cast_bf16_to_f32(dst.f32(), src.as<std::uint16_t>(), all.size(), {});
  const auto out = dst.to_host();
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::uint32_t got;
    std::memcpy(&got, &out[i], 4);
    mismatches += got != (static_cast<std::uint32_t>(all[i]) << 16);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("CUDA stochastic fp32 -> bf16 is unbiased and reproducible", "[cuda]") {
  // 1 + 2^-9 lies a quarter of the way from 1 to the next bf16 (spacing 2^-7): it must round up
  // with probability 1/4. With n = 2^20 draws the standard deviation of the fraction is 4e-4, so
  // +-0.005 is > 10 sigma, yet a biased (e.g. nearest) rounding, at 0 or 1, fails at once.
  const std::size_t n = std::size_t{1} << 20;
  const float x = 1.0f + std::ldexp(1.0f, -9);
  std::vector<float> xs(n, x);
  for (std::size_t i = 1; i < n; i += 2) xs[i] = -x;  // negative values round in magnitude
  const auto bits = to_bf16_on_gpu(xs, true, 7);
  std::size_t up = 0, bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float got = std::fabs(kc::bf16_bits_to_float(bits[i]));
    if (got == 1.0f + std::ldexp(1.0f, -7)) {
      ++up;
    } else if (got != 1.0f) {
      ++bad;
    }
  }
  CHECK(bad == 0);
  const double fraction = static_cast<double>(up) / n;
  INFO("fraction rounded up: " << fraction);
  CHECK(std::fabs(fraction - 0.25) < 0.005);

  CHECK(to_bf16_on_gpu(xs, true, 7) == bits);  // same seed, same bits
  CHECK(to_bf16_on_gpu(xs, true, 8) != bits);

  // Values bf16 holds exactly never move.
  const auto exact = rounded(randn(4096, 1001), DType::BF16);
  const auto exact_bits = to_bf16_on_gpu(exact, true, 9);
  std::size_t moved = 0;
  for (std::size_t i = 0; i < exact.size(); ++i) moved += exact_bits[i] != kc::float_to_bf16_bits(exact[i]);
  CHECK(moved == 0);
}
