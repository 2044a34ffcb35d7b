// Shared by the [cuda] tests: tolerances, random inputs, device arrays that convert to and from
// the storage type, and the accumulate check for backwards. Plain C++ (g++).
//
// Method: every GPU op is compared with its CPU twin (kernels::cpu, float) on the SAME inputs:
// in bf16 mode the inputs are rounded to bf16 first and the twin runs on the rounded values, so
// the difference measures only the GPU's own rounding (bf16 outputs, fp32 accumulation order).
// Pure outputs are poisoned (every byte 0xFF: NaN) before the call, so an element the kernel
// never wrote fails the comparison. Accumulating outputs (gradients) start from random values
// of the size of the gradient; the check compares (result - start) with the twin's gradient,
// so a missed element, a missed +=, or an overwrite all fail.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/memory.h"
#include "core/rng.h"
#include "kernels/cuda/bf16_host.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"
#include "support/random_inputs.h"
#include "support/tolerance.h"

namespace pptrain::test::cuda {

namespace kc = pptrain::kernels::cuda;
using kc::DType;

// fp32 mode: GPU and CPU both compute in fp32 and differ only in summation order and in
// expf/tanhf/sqrt implementations (a few ulp, ~1e-7 each); sums of up to 50k terms and the
// mean-subtracting backwards (layernorm, softmax) grow that to ~1e-6. 1e-5 relative (L2) leaves
// a margin; an indexing bug is O(1e-2) or worse.
constexpr double kF32Tol = 1e-5;
// bf16 mode: bf16 keeps 8 significant bits, so each stored output carries up to 2^-9 = 0.2%
// relative rounding (about 0.1% rms), and an accumulated gradient rounds (start + grad) once
// more; 1e-2 relative (L2) is 3-10x that, still far below what a wrong index produces.
constexpr double kBf16Tol = 1e-2;

inline double tolerance(DType dt) { return dt == DType::F32 ? kF32Tol : kBf16Tol; }

inline MemoryTracker& device_tracker() {
  static MemoryTracker tracker;
  return tracker;
}

// Inputs from the project's generator (test/support/random_inputs.h), as fp32.
inline std::vector<float> randn(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  const std::vector<double> x = pptrain::test::randn(n, seed, scale);
  return std::vector<float>(x.begin(), x.end());
}

using pptrain::test::random_ids;

// x as the storage type holds it (a copy; rounded to bf16 in bf16 mode).
inline std::vector<float> rounded(std::vector<float> x, DType dt) {
  if (dt == DType::BF16) {
    for (auto& v : x) v = kc::round_to_bf16(v);
  }
  return x;
}

inline double rms(const std::vector<float>& x) {
  double s = 0.0;
  for (const float v : x) s += static_cast<double>(v) * v;
  return x.empty() ? 0.0 : std::sqrt(s / static_cast<double>(x.size()));
}

inline std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

inline std::vector<float> zeros(std::size_t n) { return std::vector<float>(n, 0.0f); }

// `count` values on the device, stored as fp32 or bf16; fp32 on the host side.
class DeviceArray {
 public:
  DeviceArray(std::size_t count, DType dt, MemCategory category = MemCategory::Activations)
      : buf_(device_tracker(), category, count * kc::dtype_size(dt)), count_(count), dt_(dt) {}

  static DeviceArray from(const std::vector<float>& host, DType dt,
                          MemCategory category = MemCategory::Activations) {
    DeviceArray a(host.size(), dt, category);
    a.upload(host);
    return a;
  }

  void upload(const std::vector<float>& host) {
    REQUIRE(host.size() == count_);
    if (dt_ == DType::F32) {
      buf_.copy_from_host(host.data(), count_ * sizeof(float));
    } else {
      std::vector<std::uint16_t> bits(count_);
      for (std::size_t i = 0; i < count_; ++i) bits[i] = kc::float_to_bf16_bits(host[i]);
      buf_.copy_from_host(bits.data(), count_ * sizeof(std::uint16_t));
    }
  }

  std::vector<float> to_host() const {
    kc::synchronize({});
    std::vector<float> host(count_);
    if (dt_ == DType::F32) {
      buf_.copy_to_host(host.data(), count_ * sizeof(float));
    } else {
      std::vector<std::uint16_t> bits(count_);
      buf_.copy_to_host(bits.data(), count_ * sizeof(std::uint16_t));
      for (std::size_t i = 0; i < count_; ++i) host[i] = kc::bf16_bits_to_float(bits[i]);
    }
    return host;
  }

  void poison() { buf_.poison(); }
  void* data() { return buf_.data(); }
  float* f32() {
    REQUIRE(dt_ == DType::F32);
    return buf_.as<float>();
  }
  std::size_t count() const { return count_; }

 private:
  kc::DeviceBuffer buf_;
  std::size_t count_;
  DType dt_;
};

class DeviceInts {
 public:
  explicit DeviceInts(const std::vector<int>& host)
      : buf_(device_tracker(), MemCategory::Activations, host.size() * sizeof(int)) {
    buf_.copy_from_host(host.data(), host.size() * sizeof(int));
  }
  const int* data() const { return buf_.as<int>(); }

 private:
  kc::DeviceBuffer buf_;
};

// Relative L2 error of a GPU result against the CPU twin, with a readable failure.
inline void check_close(const std::string& what, const std::vector<float>& gpu,
                        const std::vector<float>& cpu, double tol) {
  REQUIRE(gpu.size() == cpu.size());
  const double err = relative_error(gpu, cpu);
  INFO(what << ": relative error " << err << " (tolerance " << tol << ", " << gpu.size()
            << " values)");
  CHECK(err < tol);  // false for NaN: an unwritten (poisoned) element fails
}

// Start values for an accumulated output whose gradient is `grad`: random, of the gradient's
// size (so neither hides the other in the check), as the storage type holds them.
inline std::vector<float> accumulator_start(const std::vector<float>& grad, DType dt,
                                            std::uint64_t seed) {
  const double scale = rms(grad) > 0.0 ? rms(grad) : 1.0;
  return rounded(randn(grad.size(), seed, scale), dt);
}

// An accumulated output: (result - start) must equal the twin's gradient.
inline void check_accumulated(const std::string& what, const std::vector<float>& result,
                              const std::vector<float>& start, const std::vector<float>& grad,
                              double tol) {
  check_close(what + " (result - start)", minus(result, start), grad, tol);
}

}  // namespace pptrain::test::cuda
