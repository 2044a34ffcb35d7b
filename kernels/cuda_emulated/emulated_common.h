// Helpers of the emulated CUDA backend (kernels/cuda_emulated/): fp32 views of tensors stored in
// either dtype, so each op runs its CPU twin in fp32 and rounds bf16 outputs to nearest even, as
// the GPU's from_f32 does (kernels/cuda/bf16_host.h is bit-exact with it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/bf16_host.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain::kernels::cuda::emulated {

inline void check_dtype(DType dt) {
  PPT_CHECK(dt == DType::F32 || dt == DType::BF16, "unknown storage dtype {}",
            static_cast<int>(dt));
}

// n values stored in dt, seen as fp32: the tensor itself for fp32, a converted copy for bf16.
// load = false skips reading an output the op overwrites; store() writes a bf16 tensor back
// (rounding to nearest even) and is a no-op for fp32. An accumulating output is loaded, added
// to in fp32 and stored: one rounding per op, as on the GPU.
class F32View {
 public:
  F32View(const void* p, std::size_t n, DType dt) : F32View(const_cast<void*>(p), n, dt, true) {}
  F32View(void* p, std::size_t n, DType dt, bool load) : dst_(p), n_(n), dt_(dt) {
    check_dtype(dt);
    if (p == nullptr) return;
    if (dt == DType::F32) {
      data_ = static_cast<float*>(p);
      return;
    }
    copy_.resize(n);
    if (load) {
      const auto* h = static_cast<const std::uint16_t*>(p);
      for (std::size_t i = 0; i < n; ++i) copy_[i] = bf16_bits_to_float(h[i]);
    }
    data_ = copy_.data();
  }
  float* data() { return data_; }
  void store() {
    if (dt_ != DType::BF16 || dst_ == nullptr) return;
    auto* h = static_cast<std::uint16_t*>(dst_);
    for (std::size_t i = 0; i < n_; ++i) h[i] = float_to_bf16_bits(copy_[i]);
  }

 private:
  void* dst_;
  std::size_t n_;
  DType dt_;
  float* data_ = nullptr;
  std::vector<float> copy_;
};

// The GPU's stochastic rounding (kernels/cuda/common.cuh), bit for bit: splitmix64's finaliser
// of (seed, index), then 16 random bits added below the cut.
inline std::uint32_t random_bits(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<std::uint32_t>(z ^ (z >> 31));
}

inline std::uint16_t f32_to_bf16_bits_stochastic(float x, std::uint32_t rnd) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u) return float_to_bf16_bits(x);
  return static_cast<std::uint16_t>((bits + (rnd & 0xFFFFu)) >> 16);
}

}  // namespace pptrain::kernels::cuda::emulated
