// [cuda] layernorm: forward, fused residual forward and backward against the CPU twin
// (kernels/layernorm.h), fp32 and bf16 storage, and one run on a non-default stream.
#include "cuda_test_util.h"
#include "kernels/layernorm.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct LnShape {
  int N, C;
};
// N = 1 and 7 (a partial block of 8 rows), C = 24/36/37 (fewer than 32 lanes' worth, odd), and
// GPT-2 widths 768 and 1600.
// 1000 and 4097 rows: the parameter gradients are summed in 4 and 17 chunks of rows, the
// last one short.
const LnShape kShapes[] = {{1, 24}, {7, 36}, {3, 37}, {130, 768}, {5, 1600}, {1000, 96}, {4097, 40}};

struct LnInputs {
  std::vector<float> inp, weight, bias;
};

LnInputs make_inputs(const LnShape& s, DType dt, std::uint64_t seed) {
  LnInputs in;
  in.inp = rounded(randn(std::size_t(s.N) * s.C, seed, 2.0), dt);
  in.weight = randn(s.C, seed + 1, 0.2);
  for (auto& w : in.weight) w += 1.0f;
  in.weight = rounded(in.weight, dt);
  in.bias = rounded(randn(s.C, seed + 2, 0.2), dt);
  return in;
}

}  // namespace

TEST_CASE("CUDA layernorm forward/backward match the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const LnShape& s : kShapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C);
      const std::size_t NC = std::size_t(s.N) * s.C;
      const LnInputs in = make_inputs(s, dt, 100);
      std::vector<float> out_ref(NC), mean_ref(s.N), rstd_ref(s.N);
      cpu::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), in.inp.data(),
                             in.weight.data(), in.bias.data(), s.N, s.C);

      DeviceArray d_inp = DeviceArray::from(in.inp, dt), d_w = DeviceArray::from(in.weight, dt),
                  d_b = DeviceArray::from(in.bias, dt);
      DeviceArray d_out(NC, dt), d_mean(s.N, DType::F32), d_rstd(s.N, DType::F32);
      d_out.poison();
      d_mean.poison();
      d_rstd.poison();
      kc::layernorm_forward(d_out.data(), d_mean.f32(), d_rstd.f32(), d_inp.data(), d_w.data(),
                            d_b.data(), s.N, s.C, dt, {});
      check_close("layernorm out", d_out.to_host(), out_ref, tolerance(dt));
      // Statistics are fp32 in both modes, from identical inputs.
      check_close("layernorm mean", d_mean.to_host(), mean_ref, kF32Tol);
      check_close("layernorm rstd", d_rstd.to_host(), rstd_ref, kF32Tol);

      // Backward, from the GPU's own saved mean/rstd (as training uses it).
      const auto dout = rounded(randn(NC, 103), dt);
      auto dinp_grad = zeros(NC), dw_grad = zeros(s.C), db_grad = zeros(s.C);
      cpu::layernorm_backward(dinp_grad.data(), dw_grad.data(), db_grad.data(), dout.data(),
                              in.inp.data(), in.weight.data(), mean_ref.data(), rstd_ref.data(),
                              s.N, s.C);
      const auto dinp_start = accumulator_start(dinp_grad, dt, 104);
      const auto dw_start = accumulator_start(dw_grad, DType::F32, 105);
      const auto db_start = accumulator_start(db_grad, DType::F32, 106);
      DeviceArray d_dout = DeviceArray::from(dout, dt);
      DeviceArray d_dinp = DeviceArray::from(dinp_start, dt);
      DeviceArray d_dw = DeviceArray::from(dw_start, DType::F32, pptrain::MemCategory::Grads);
      DeviceArray d_db = DeviceArray::from(db_start, DType::F32, pptrain::MemCategory::Grads);
      kc::layernorm_backward(d_dinp.data(), d_dw.f32(), d_db.f32(), d_dout.data(), d_inp.data(),
                             d_w.data(), d_mean.f32(), d_rstd.f32(), s.N, s.C, dt, {});
      check_accumulated("layernorm dinp", d_dinp.to_host(), dinp_start, dinp_grad, tolerance(dt));
      // dinp = base + ... from another array: dinp's old contents (NaN) are never read.
      DeviceArray d_base = DeviceArray::from(dinp_start, dt), d_dinp_fresh(NC, dt);
      d_dinp_fresh.poison();
      kc::layernorm_backward(d_dinp_fresh.data(), nullptr, nullptr, d_dout.data(), d_inp.data(),
                             d_w.data(), d_mean.f32(), d_rstd.f32(), s.N, s.C, dt, {},
                             d_base.data());
      check_accumulated("layernorm dinp from a base", d_dinp_fresh.to_host(), dinp_start,
                        dinp_grad, tolerance(dt));
      // dweight/dbias are fp32 sums of identical inputs in both modes.
      check_accumulated("layernorm dweight", d_dw.to_host(), dw_start, dw_grad, kF32Tol);
      check_accumulated("layernorm dbias", d_db.to_host(), db_start, db_grad, kF32Tol);
    }
  }
}

TEST_CASE("CUDA layernorm backward with dweight, dbias summed in the dinp pass", "[cuda]") {
  // bf16 with an even C (the fused path; other shapes take the two passes): the same dinp,
  // bitwise, as the two-pass path, and the parameter sums within fp32 round-off of the twin.
  const DType dt = DType::BF16;
  // 70001 rows: more than 1024 blocks of 64, so the blocks take 69 rows each.
  for (const LnShape& s : {LnShape{130, 768}, LnShape{5, 1600}, LnShape{1000, 96},
                           LnShape{4097, 40}, LnShape{7, 36}, LnShape{70001, 8}}) {
    INFO("N=" << s.N << " C=" << s.C);
    const std::size_t NC = std::size_t(s.N) * s.C;
    const LnInputs in = make_inputs(s, dt, 300);
    std::vector<float> out_ref(NC), mean(s.N), rstd(s.N);
    cpu::layernorm_forward(out_ref.data(), mean.data(), rstd.data(), in.inp.data(),
                           in.weight.data(), in.bias.data(), s.N, s.C);
    const auto dout = rounded(randn(NC, 303), dt);
    auto dinp_grad = zeros(NC), dw_grad = zeros(s.C), db_grad = zeros(s.C);
    cpu::layernorm_backward(dinp_grad.data(), dw_grad.data(), db_grad.data(), dout.data(),
                            in.inp.data(), in.weight.data(), mean.data(), rstd.data(), s.N, s.C);
    const auto dinp_start = accumulator_start(dinp_grad, dt, 304);
    const auto dw_start = accumulator_start(dw_grad, DType::F32, 305);
    const auto db_start = accumulator_start(db_grad, DType::F32, 306);
    DeviceArray d_inp = DeviceArray::from(in.inp, dt), d_w = DeviceArray::from(in.weight, dt);
    DeviceArray d_mean = DeviceArray::from(mean, DType::F32), d_rstd = DeviceArray::from(rstd, DType::F32);
    DeviceArray d_dout = DeviceArray::from(dout, dt);
    std::vector<float> dinp[2];
    for (const bool fused : {false, true}) {
      DeviceArray d_dinp = DeviceArray::from(dinp_start, dt);
      DeviceArray d_dw = DeviceArray::from(dw_start, DType::F32, pptrain::MemCategory::Grads);
      DeviceArray d_db = DeviceArray::from(db_start, DType::F32, pptrain::MemCategory::Grads);
      kc::layernorm_backward(d_dinp.data(), d_dw.f32(), d_db.f32(), d_dout.data(), d_inp.data(),
                             d_w.data(), d_mean.f32(), d_rstd.f32(), s.N, s.C, dt, {}, nullptr,
                             fused);
      dinp[fused] = d_dinp.to_host();
      check_accumulated("layernorm dinp", dinp[fused], dinp_start, dinp_grad, tolerance(dt));
      check_accumulated("layernorm dweight", d_dw.to_host(), dw_start, dw_grad, kF32Tol);
      check_accumulated("layernorm dbias", d_db.to_host(), db_start, db_grad, kF32Tol);
    }
    CHECK(dinp[0] == dinp[1]);
  }
}

TEST_CASE("CUDA residual layernorm forward matches the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const LnShape& s : kShapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C);
      const std::size_t NC = std::size_t(s.N) * s.C;
      const LnInputs in = make_inputs(s, dt, 200);
      const auto a = in.inp;
      const auto b = rounded(randn(NC, 203), dt);
      std::vector<float> res_ref(NC), out_ref(NC), mean_ref(s.N), rstd_ref(s.N);
      if (dt == DType::F32) {
        cpu::residual_layernorm_forward(res_ref.data(), out_ref.data(), mean_ref.data(),
                                        rstd_ref.data(), a.data(), b.data(), in.weight.data(),
                                        in.bias.data(), s.N, s.C);
      } else {
        // The GPU stores the residual as bf16 and normalises the stored value.
        for (std::size_t i = 0; i < NC; ++i) res_ref[i] = a[i] + b[i];
        res_ref = rounded(res_ref, dt);
        cpu::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), res_ref.data(),
                               in.weight.data(), in.bias.data(), s.N, s.C);
      }
      DeviceArray d_a = DeviceArray::from(a, dt), d_b2 = DeviceArray::from(b, dt);
      DeviceArray d_w = DeviceArray::from(in.weight, dt), d_b = DeviceArray::from(in.bias, dt);
      DeviceArray d_res(NC, dt), d_out(NC, dt), d_mean(s.N, DType::F32), d_rstd(s.N, DType::F32);
      d_res.poison();
      d_out.poison();
      d_mean.poison();
      d_rstd.poison();
      kc::residual_layernorm_forward(d_res.data(), d_out.data(), d_mean.f32(), d_rstd.f32(),
                                     d_a.data(), d_b2.data(), d_w.data(), d_b.data(), s.N, s.C, dt,
                                     {});
      check_close("residual", d_res.to_host(), res_ref, tolerance(dt));
      check_close("residual layernorm out", d_out.to_host(), out_ref, tolerance(dt));
      check_close("residual layernorm mean", d_mean.to_host(), mean_ref, kF32Tol);
      check_close("residual layernorm rstd", d_rstd.to_host(), rstd_ref, kF32Tol);
    }
  }
}

TEST_CASE("CUDA layernorm runs on a non-default stream", "[cuda]") {
  const LnShape s{65, 96};
  const std::size_t NC = std::size_t(s.N) * s.C;
  const LnInputs in = make_inputs(s, DType::F32, 300);
  std::vector<float> out_ref(NC), mean_ref(s.N), rstd_ref(s.N);
  cpu::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), in.inp.data(),
                         in.weight.data(), in.bias.data(), s.N, s.C);
  DeviceArray d_inp = DeviceArray::from(in.inp, DType::F32),
              d_w = DeviceArray::from(in.weight, DType::F32),
              d_b = DeviceArray::from(in.bias, DType::F32);
  DeviceArray d_out(NC, DType::F32), d_mean(s.N, DType::F32), d_rstd(s.N, DType::F32);
  d_out.poison();
  kc::synchronize({});  // uploads and poison (legacy stream) before the non-blocking stream runs
  kc::OwnedStream stream;
  kc::layernorm_forward(d_out.data(), d_mean.f32(), d_rstd.f32(), d_inp.data(), d_w.data(),
                        d_b.data(), s.N, s.C, DType::F32, stream.get());
  kc::synchronize(stream.get());
  check_close("layernorm out (own stream)", d_out.to_host(), out_ref, kF32Tol);
}
