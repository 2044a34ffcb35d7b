// Emulated elementwise ops, casts, AdamW and the gradient-norm reductions (kernels/cuda/gelu.cu,
// add.cu, cast.cu, adamw.cu, grad_norm.cu): the CPU twins in fp32, bf16 rounded as on the GPU,
// stochastic rounding with the GPU's hash so emulated and real runs agree bitwise there.
#include <cmath>
#include <cstring>

#include "kernels/adamw.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda_emulated/emulated_common.h"
#include "kernels/gelu.h"
#include "kernels/grad_norm.h"

namespace pptrain::kernels::cuda {

using emulated::F32View;

void gelu_forward(void* out, const void* inp, std::size_t n, DType dt, Stream) {
  if (n == 0) return;
  F32View x(inp, n, dt);
  F32View y(out, n, dt, false);
  cpu::gelu_forward(y.data(), x.data(), n);
  y.store();
}

void gelu_backward(void* dinp, const void* inp, const void* dout, std::size_t n, DType dt,
                   Stream) {
  if (n == 0) return;
  PPT_CHECK(dinp != dout, "gelu_backward: dinp must not alias dout (the backward accumulates)");
  F32View x(inp, n, dt), dy(dout, n, dt);
  F32View dx(dinp, n, dt, true);
  cpu::gelu_backward(dx.data(), x.data(), dy.data(), n);
  dx.store();
}

void add_vectors(void* out, const void* a, const void* b, std::size_t n, DType dt, Stream) {
  if (n == 0) return;
  emulated::check_dtype(dt);
  if (dt == DType::F32) {
    auto* o = static_cast<float*>(out);
    const auto* x = static_cast<const float*>(a);
    const auto* y = static_cast<const float*>(b);
    for (std::size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
    return;
  }
  auto* o = static_cast<std::uint16_t*>(out);
  const auto* x = static_cast<const std::uint16_t*>(a);
  const auto* y = static_cast<const std::uint16_t*>(b);
  for (std::size_t i = 0; i < n; ++i) {
    o[i] = float_to_bf16_bits(bf16_bits_to_float(x[i]) + bf16_bits_to_float(y[i]));
  }
}

void cast_f32_to_bf16(std::uint16_t* dst, const float* src, std::size_t n, Stream) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = float_to_bf16_bits(src[i]);
}

void cast_bf16_to_f32(float* dst, const std::uint16_t* src, std::size_t n, Stream) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_bits_to_float(src[i]);
}

void cast_f32_to_bf16_stochastic(std::uint16_t* dst, const float* src, std::size_t n,
                                 std::uint64_t seed, Stream) {
  for (std::size_t i = 0; i < n; ++i) {
    dst[i] = emulated::f32_to_bf16_bits_stochastic(src[i], emulated::random_bits(seed, i));
  }
}

void adamw_update(const AdamwBuffers& buffers, const std::vector<AdamwTensor>& tensors,
                  const AdamwStep& step, Stream stream) {
  checks::adamw(buffers, step);
  for (const AdamwTensor& t : tensors) {
    if (t.n == 0) continue;
    float* p = buffers.params + t.offset;
    cpu::adamw_update(p, buffers.grads + t.offset, buffers.m + t.offset, buffers.v + t.offset, t.n,
                      step, t.weight_decay);
    if (buffers.params_bf16 != nullptr) {
      cast_f32_to_bf16_stochastic(buffers.params_bf16 + t.offset, p, t.n, t.seed, stream);
    }
  }
}

namespace {

// The real reduction's scratch holds 1024 double partials (kernels/cuda/grad_norm.cu).
constexpr std::size_t kScratchBytes = kSumOfSquaresScratchBytes;

void check_scratch(const void* scratch, std::size_t scratch_bytes, const char* name) {
  checks::reduce_scratch(scratch, scratch_bytes, kScratchBytes, name);
}

}  // namespace


void sum_of_squares(double* acc, const float* x, std::size_t n, void* scratch,
                    std::size_t scratch_bytes, Stream) {
  if (n == 0) return;
  check_scratch(scratch, scratch_bytes, "sum_of_squares");
  *acc += cpu::sum_of_squares(x, n);
}

void add_scaled_sum(double* acc, const float* x, std::size_t n, double scale, void* scratch,
                    std::size_t scratch_bytes, Stream) {
  if (n == 0) return;
  check_scratch(scratch, scratch_bytes, "add_scaled_sum");
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i];
  *acc += scale * sum;
}

}  // namespace pptrain::kernels::cuda
