// [cuda] encoder: forward and the deterministic backward against the CPU twin (kernels/encoder.h),
// fp32 and bf16 storage; the backward run twice must agree bitwise.
#include <cstring>
#include <utility>

#include "cuda_test_util.h"
#include "kernels/encoder.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct EncoderShape {
  int B, T, C, Vp, maxT;
};

// T = 1 and 7 (partial everything), 65 (two 32-row tiles and a bit), C = 24/36 (not multiples of
// 32: a partial channel chunk), Vp = 8 (ids repeat a lot: long runs per id) and 50304.
const EncoderShape kShapes[] = {
    {1, 1, 24, 8, 4}, {2, 7, 36, 8, 9}, {4, 65, 24, 8, 80}, {3, 65, 36, 50304, 65}, {2, 33, 768, 50304, 64}};

struct DeviceScratch {
  explicit DeviceScratch(std::size_t bytes)
      : buf(device_tracker(), pptrain::MemCategory::Workspace, bytes) {}
  kc::DeviceBuffer buf;
};

// Runs the GPU backward from a zero start; returns dwte and dwpe.
std::pair<std::vector<float>, std::vector<float>> gpu_backward_from_zero(
    const EncoderShape& s, const std::vector<float>& dout, const std::vector<int>& ids, DType dt) {
  DeviceArray d_dout = DeviceArray::from(dout, dt);
  DeviceInts d_ids(ids);
  DeviceArray d_dwte = DeviceArray::from(zeros(std::size_t(s.Vp) * s.C), DType::F32);
  DeviceArray d_dwpe = DeviceArray::from(zeros(std::size_t(s.maxT) * s.C), DType::F32);
  DeviceScratch scratch(kc::encoder_backward_scratch_bytes(s.B, s.T, s.Vp));
  kc::encoder_backward(d_dwte.f32(), d_dwpe.f32(), d_dout.data(), d_ids.data(), s.B, s.T, s.C,
                       s.Vp, dt, scratch.buf.data(), scratch.buf.bytes(), {});
  return {d_dwte.to_host(), d_dwpe.to_host()};
}

}  // namespace

TEST_CASE("CUDA encoder forward/backward match the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const EncoderShape& s : kShapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", B=" << s.B << " T=" << s.T << " C=" << s.C
                    << " Vp=" << s.Vp);
      const std::size_t BT = std::size_t(s.B) * s.T, BTC = BT * s.C;
      const auto ids = random_ids(BT, s.Vp, 11);
      const auto wte = rounded(randn(std::size_t(s.Vp) * s.C, 12), dt);
      const auto wpe = rounded(randn(std::size_t(s.maxT) * s.C, 13), dt);

      std::vector<float> out_ref(BTC);
      cpu::encoder_forward(out_ref.data(), ids.data(), wte.data(), wpe.data(), s.B, s.T, s.C);
      DeviceArray d_out(BTC, dt);
      d_out.poison();
      DeviceArray d_wte = DeviceArray::from(wte, dt), d_wpe = DeviceArray::from(wpe, dt);
      DeviceInts d_ids(ids);
      kc::encoder_forward(d_out.data(), d_ids.data(), d_wte.data(), d_wpe.data(), s.B, s.T, s.C, dt,
                          {});
      check_close("encoder out", d_out.to_host(), out_ref, tolerance(dt));

      // Backward: dwte/dwpe are fp32 in both modes and sum identical (rounded) inputs, so only
      // the summation order differs: the fp32 tolerance applies.
      const auto dout = rounded(randn(BTC, 14), dt);
      auto dwte_grad = zeros(std::size_t(s.Vp) * s.C), dwpe_grad = zeros(std::size_t(s.maxT) * s.C);
      cpu::encoder_backward(dwte_grad.data(), dwpe_grad.data(), dout.data(), ids.data(), s.B, s.T,
                            s.C);
      const auto dwte_start = accumulator_start(dwte_grad, DType::F32, 15);
      const auto dwpe_start = accumulator_start(dwpe_grad, DType::F32, 16);
      DeviceArray d_dout = DeviceArray::from(dout, dt);
      DeviceArray d_dwte = DeviceArray::from(dwte_start, DType::F32, pptrain::MemCategory::Grads);
      DeviceArray d_dwpe = DeviceArray::from(dwpe_start, DType::F32, pptrain::MemCategory::Grads);
      DeviceScratch scratch(kc::encoder_backward_scratch_bytes(s.B, s.T, s.Vp));
      kc::encoder_backward(d_dwte.f32(), d_dwpe.f32(), d_dout.data(), d_ids.data(), s.B, s.T, s.C,
                           s.Vp, dt, scratch.buf.data(), scratch.buf.bytes(), {});
      check_accumulated("encoder dwte", d_dwte.to_host(), dwte_start, dwte_grad, kF32Tol);
      check_accumulated("encoder dwpe", d_dwpe.to_host(), dwpe_start, dwpe_grad, kF32Tol);
    }
  }
}

TEST_CASE("CUDA encoder backward is bitwise deterministic", "[cuda]") {
  // Many repeats of few ids (Vp = 8, 8*65 positions: runs of ~65) and many distinct ids.
  for (const EncoderShape s : {EncoderShape{8, 65, 36, 8, 65}, EncoderShape{4, 64, 96, 50304, 64}}) {
    for (const DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype " << kc::dtype_name(dt) << ", B=" << s.B << " T=" << s.T << " Vp=" << s.Vp);
      const std::size_t BT = std::size_t(s.B) * s.T;
      const auto ids = random_ids(BT, s.Vp, 21);
      const auto dout = rounded(randn(BT * s.C, 22), dt);
      const auto first = gpu_backward_from_zero(s, dout, ids, dt);
      const auto second = gpu_backward_from_zero(s, dout, ids, dt);
      CHECK(std::memcmp(first.first.data(), second.first.data(), first.first.size() * 4) == 0);
      CHECK(std::memcmp(first.second.data(), second.second.data(), first.second.size() * 4) == 0);
    }
  }
}
