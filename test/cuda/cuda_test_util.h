// Shared by the [cuda] tests: device arrays that convert to and from the storage type, over
// the device-free comparisons of kernel_checks.h (tolerances, inputs, close and accumulated
// checks; the method is described there). Plain C++ (g++).
#pragma once

#include <vector>

#include "core/memory.h"
#include "core/rng.h"
#include "kernel_checks.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"

namespace pptrain::test::cuda {

inline MemoryTracker& device_tracker() {
  static MemoryTracker tracker;
  return tracker;
}

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

}  // namespace pptrain::test::cuda
