// Emulated encoder (kernels/cuda/encoder.cu): the CPU twin in fp32 on fp32 views of the stored
// tensors, with the real op's shape and scratch checks. The SIMT-emulated kernel library uses it
// too: the real backward's radix sort is CUB's device code, which the emulator does not run.
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda_emulated/emulated_common.h"
#include "kernels/encoder.h"

namespace pptrain::kernels::cuda {
namespace {

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void encoder_forward(void* out, const int* inp, const void* wte, const void* wpe, int B, int T,
                     int C, DType dt, Stream) {
  checks::encoder_shape(B, T, C);
  emulated::check_dtype(dt);
  const std::size_t n = static_cast<std::size_t>(B) * T * C;
  if (n == 0) return;
  if (dt == DType::F32) {
    cpu::encoder_forward(static_cast<float*>(out), inp, static_cast<const float*>(wte),
                         static_cast<const float*>(wpe), B, T, C);
    return;
  }
  // wte's row count (Vp) is not an argument: read the rows the ids name.
  auto* o = static_cast<std::uint16_t*>(out);
  const auto* e = static_cast<const std::uint16_t*>(wte);
  const auto* p = static_cast<const std::uint16_t*>(wpe);
  for (std::size_t bt = 0; bt < static_cast<std::size_t>(B) * T; ++bt) {
    const std::size_t t = bt % static_cast<std::size_t>(T);
    const std::uint16_t* er = e + static_cast<std::size_t>(inp[bt]) * C;
    const std::uint16_t* pr = p + t * C;
    for (int c = 0; c < C; ++c) {
      o[bt * C + c] = float_to_bf16_bits(bf16_bits_to_float(er[c]) + bf16_bits_to_float(pr[c]));
    }
  }
}

// The real op radix-sorts (id, position) pairs in three int slots plus CUB's storage; the
// emulation needs none of it but asks for the same order of size, so callers size it alike.
std::size_t encoder_backward_scratch_bytes(int B, int T, int Vp) {
  checks::encoder_shape(B, T, 0);
  PPT_CHECK(Vp > 0, "encoder: Vp must be positive, got {}", Vp);
  const int n = B * T;
  if (n == 0) return 0;
  return 4 * align256(static_cast<std::size_t>(n) * sizeof(int));
}

void encoder_backward(float* dwte, float* dwpe, const void* dout, const int* inp, int B, int T,
                      int C, int Vp, DType dt, void* scratch, std::size_t scratch_bytes, Stream) {
  checks::encoder_shape(B, T, C);
  emulated::check_dtype(dt);
  const int n = B * T;
  if (n == 0 || C == 0) return;
  const std::size_t need = encoder_backward_scratch_bytes(B, T, Vp);
  checks::encoder_scratch(scratch, scratch_bytes, need);
  emulated::F32View dy(dout, static_cast<std::size_t>(n) * C, dt);
  cpu::encoder_backward(dwte, dwpe, dy.data(), inp, B, T, C);
}

}  // namespace pptrain::kernels::cuda
