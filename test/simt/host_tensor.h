// Host memory standing in for device memory in the SIMT emulator's tests: `count` values stored
// as fp32 or bf16 words, converted from and to fp32 like the [cuda] tests' DeviceArray.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/bf16_host.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain::test::simt {

namespace kc = pptrain::kernels::cuda;

class HostTensor {
 public:
  HostTensor(std::size_t count, kc::DType dt)
      : bytes_(count * kc::dtype_size(dt) + 16), count_(count), dt_(dt) {}

  static HostTensor from(const std::vector<float>& values, kc::DType dt) {
    HostTensor t(values.size(), dt);
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (dt == kc::DType::F32) {
        std::memcpy(t.aligned() + 4 * i, &values[i], 4);
      } else {
        const std::uint16_t h = kc::float_to_bf16_bits(values[i]);
        std::memcpy(t.aligned() + 2 * i, &h, 2);
      }
    }
    return t;
  }

  std::vector<float> to_host() const {
    std::vector<float> out(count_);
    for (std::size_t i = 0; i < count_; ++i) {
      if (dt_ == kc::DType::F32) {
        std::memcpy(&out[i], bytes() + 4 * i, 4);
      } else {
        std::uint16_t h;
        std::memcpy(&h, bytes() + 2 * i, 2);
        out[i] = kc::bf16_bits_to_float(h);
      }
    }
    return out;
  }

  // Every byte 0xFF (NaN in both types), as DeviceArray::poison.
  void poison() { std::memset(aligned(), 0xFF, count_ * kc::dtype_size(dt_)); }
  void* data() { return aligned(); }
  const void* data() const { return const_cast<HostTensor*>(this)->aligned(); }
  float* f32() { return reinterpret_cast<float*>(aligned()); }

 private:
  const unsigned char* bytes() const { return const_cast<HostTensor*>(this)->aligned(); }
  // 16-byte aligned like cudaMalloc's (256), so the kernels' vector paths are taken.
  unsigned char* aligned() {
    auto p = reinterpret_cast<std::uintptr_t>(bytes_.data());
    return bytes_.data() + ((16 - p % 16) % 16);
  }
  std::vector<unsigned char> bytes_;
  std::size_t count_;
  kc::DType dt_;
};

}  // namespace pptrain::test::simt
