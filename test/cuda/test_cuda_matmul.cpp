// [cuda] matmul through cuBLASLt: forward (bias, GELU epilogue fused and unfused) and backward
// (dinp, dweight, dbias, accumulating; through GELU, DGELU epilogue fused and unfused) against the
// CPU twins (kernels/matmul.h, gelu.h), fp32 and bf16 storage.
#include "cuda_test_util.h"
#include "kernels/gelu.h"
#include "kernels/matmul.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct MmShape {
  int N, C, OC;
};
// N = 1 and 7, odd channel counts (36 = 4 mod 8: the GELU epilogue cannot be used), OC = 96 and
// 2304 (multiples of 8: fused GELU), a GPT-2-sized qkv projection; 1000 and 4097 rows: the bias
// gradient is summed in 4 and 17 chunks of rows, the last one short.
const MmShape kShapes[] = {{1, 24, 36},    {7, 36, 24},   {65, 24, 96}, {13, 36, 36},
                           {130, 768, 2304}, {1000, 32, 40}, {4097, 24, 16}};

// Whether a GELU matmul took cuBLASLt's epilogue: never when fusion was off or the shape rules
// it out; always in bf16 (llm.c relies on these epilogues there); fp32 may fall back, which is
// correct either way (the caller checked the values) and only recorded.
void check_gelu_fusion(const char* epilogue, bool eligible, DType dt, bool fused, const MmShape& s) {
  if (!eligible) {
    CHECK_FALSE(fused);
  } else if (dt == DType::BF16) {
    INFO("cuBLASLt offered no bf16 " << epilogue << " algorithm: the unfused fallback ran");
    CHECK(fused);
  } else if (!fused) {
    WARN("fp32 " << epilogue << " not offered by cuBLASLt for N=" << s.N << " C=" << s.C
                 << " OC=" << s.OC);
  }
}

}  // namespace

TEST_CASE("CUDA matmul forward/backward match the CPU twin", "[cuda]") {
  kc::CublasLtContext ctx(device_tracker());
  // dbias by the column-sum kernel, then (where cuBLASLt has it) by the BGRADB epilogue.
  for (const bool bias_epilogue : {false, true}) {
    ctx.set_bias_grad_epilogue(bias_epilogue);
    for (const DType dt : {DType::F32, DType::BF16}) {
      for (const MmShape& s : kShapes) {
        for (const bool with_bias : {true, false}) {
          INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C << " OC=" << s.OC
                        << " bias=" << with_bias << " dbias epilogue=" << bias_epilogue);
          const std::size_t NC = std::size_t(s.N) * s.C, NOC = std::size_t(s.N) * s.OC;
          const std::size_t WC = std::size_t(s.OC) * s.C;
          const auto inp = rounded(randn(NC, 700), dt);
          const auto weight = rounded(randn(WC, 701, 0.1), dt);
          const auto bias = rounded(randn(s.OC, 702), dt);
          const float* bias_ref = with_bias ? bias.data() : nullptr;
          std::vector<float> out_ref(NOC);
          cpu::matmul_forward(out_ref.data(), inp.data(), weight.data(), bias_ref, s.N, s.C, s.OC);

          DeviceArray d_inp = DeviceArray::from(inp, dt), d_w = DeviceArray::from(weight, dt),
                      d_bias = DeviceArray::from(bias, dt), d_out(NOC, dt);
          d_out.poison();
          kc::matmul_forward(ctx, d_out.data(), d_inp.data(), d_w.data(),
                             with_bias ? d_bias.data() : nullptr, s.N, s.C, s.OC, dt, {});
          check_close("matmul out", d_out.to_host(), out_ref, tolerance(dt));

          const auto dout = rounded(randn(NOC, 703), dt);
          auto dinp_grad = zeros(NC), dw_grad = zeros(WC), db_grad = zeros(s.OC);
          cpu::matmul_backward(dinp_grad.data(), dw_grad.data(), db_grad.data(), dout.data(),
                               inp.data(), weight.data(), s.N, s.C, s.OC);
          const auto dinp_start = accumulator_start(dinp_grad, dt, 704);
          const auto dw_start = accumulator_start(dw_grad, DType::F32, 705);
          const auto db_start = accumulator_start(db_grad, DType::F32, 706);
          DeviceArray d_dout = DeviceArray::from(dout, dt), d_dinp = DeviceArray::from(dinp_start, dt);
          DeviceArray d_dw = DeviceArray::from(dw_start, DType::F32, pptrain::MemCategory::Grads);
          DeviceArray d_db = DeviceArray::from(db_start, DType::F32, pptrain::MemCategory::Grads);
          if (with_bias) {
            kc::matmul_backward(ctx, d_dinp.data(), d_dw.f32(), d_db.f32(), d_dout.data(),
                                d_inp.data(), d_w.data(), s.N, s.C, s.OC, dt, {});
            check_accumulated("matmul dinp", d_dinp.to_host(), dinp_start, dinp_grad, tolerance(dt));
            check_accumulated("matmul dbias", d_db.to_host(), db_start, db_grad, kF32Tol);
          } else {
            // dinp and dbias are optional: null skips them.
            kc::matmul_backward(ctx, nullptr, d_dw.f32(), nullptr, d_dout.data(), d_inp.data(),
                                d_w.data(), s.N, s.C, s.OC, dt, {});
            CHECK(d_dinp.to_host() == dinp_start);
            CHECK(d_db.to_host() == db_start);
          }
          // dweight is fp32, but in bf16 mode its products run on tensor cores, whose fp32
          // accumulation is not IEEE-ordered: the bf16 tolerance is stated for it.
          check_accumulated("matmul dweight", d_dw.to_host(), dw_start, dw_grad, tolerance(dt));
        }
      }
    }
  }
#if !PPTRAIN_CUDA_EMULATED
  // Recorded, not required: the column sums are the fallback, and correct either way.
  if (ctx.bias_grad_epilogue_calls() == 0) {
    WARN("cuBLASLt offered no BGRADB algorithm for any shape");
  }
#endif
}

TEST_CASE("CUDA matmul GELU epilogue, fused and unfused, matches the CPU twins", "[cuda]") {
  kc::CublasLtContext ctx(device_tracker());
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const MmShape& s : kShapes) {
      for (const bool fusion : {true, false}) {
        INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C << " OC=" << s.OC
                      << " fusion allowed=" << fusion);
        const std::size_t NC = std::size_t(s.N) * s.C, NOC = std::size_t(s.N) * s.OC;
        const auto inp = rounded(randn(NC, 710), dt);
        const auto weight = rounded(randn(std::size_t(s.OC) * s.C, 711, 0.3), dt);
        const auto bias = rounded(randn(s.OC, 712), dt);
        std::vector<float> pre_ref(NOC), out_ref(NOC);
        cpu::matmul_forward(pre_ref.data(), inp.data(), weight.data(), bias.data(), s.N, s.C, s.OC);
        cpu::gelu_forward(out_ref.data(), pre_ref.data(), NOC);

        DeviceArray d_inp = DeviceArray::from(inp, dt), d_w = DeviceArray::from(weight, dt),
                    d_bias = DeviceArray::from(bias, dt), d_out(NOC, dt), d_pre(NOC, dt);
        d_out.poison();
        d_pre.poison();
        ctx.set_gelu_fusion(fusion);
        const long fused_before = ctx.gelu_fused_calls();
        kc::matmul_forward(ctx, d_out.data(), d_inp.data(), d_w.data(), d_bias.data(), s.N, s.C,
                           s.OC, dt, {}, d_pre.data());
        check_close("matmul+gelu pre-activation", d_pre.to_host(), pre_ref, tolerance(dt));
        check_close("matmul+gelu out", d_out.to_host(), out_ref, tolerance(dt));
        check_gelu_fusion("GELU_AUX_BIAS", fusion && s.OC % 8 == 0, dt,
                          ctx.gelu_fused_calls() > fused_before, s);
      }
    }
  }
}

TEST_CASE("CUDA matmul backward through GELU, fused and unfused, matches the CPU twins", "[cuda]") {
  // The MLP projection's backward: its input is GELU(pre); d(pre) = (dout @ W) * gelu'(pre).
  // Here C is the projection's input width (the pre-activation's): the DGELU epilogue needs
  // C % 8 == 0, so C = 24, 32, 768 may fuse and 36 may not.
  kc::CublasLtContext ctx(device_tracker());
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const MmShape& s : kShapes) {
      for (const bool fusion : {true, false}) {
        INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C << " OC=" << s.OC
                      << " fusion allowed=" << fusion);
        const std::size_t NC = std::size_t(s.N) * s.C, NOC = std::size_t(s.N) * s.OC;
        const auto pre = rounded(randn(NC, 730), dt);
        std::vector<float> inp(NC);
        cpu::gelu_forward(inp.data(), pre.data(), NC);
        inp = rounded(inp, dt);
        const auto weight = rounded(randn(std::size_t(s.OC) * s.C, 731, 0.3), dt);
        const auto dout = rounded(randn(NOC, 732), dt);
        std::vector<float> dgelu_out(NC, 0.0f), dpre_ref(NC, 0.0f);
        std::vector<float> dw_grad(std::size_t(s.OC) * s.C, 0.0f), db_grad(s.OC, 0.0f);
        cpu::matmul_backward(dgelu_out.data(), dw_grad.data(), db_grad.data(), dout.data(),
                             inp.data(), weight.data(), s.N, s.C, s.OC);
        cpu::gelu_backward(dpre_ref.data(), pre.data(), dgelu_out.data(), NC);

        const auto dw_start = accumulator_start(dw_grad, DType::F32, 733);
        const auto db_start = accumulator_start(db_grad, DType::F32, 734);
        DeviceArray d_pre = DeviceArray::from(pre, dt), d_inp = DeviceArray::from(inp, dt),
                    d_w = DeviceArray::from(weight, dt), d_dout = DeviceArray::from(dout, dt),
                    d_dpre(NC, dt), d_scratch(NC, dt),
                    d_dw = DeviceArray::from(dw_start, DType::F32, pptrain::MemCategory::Grads),
                    d_db = DeviceArray::from(db_start, DType::F32, pptrain::MemCategory::Grads);
        d_dpre.poison();  // written, never read
        d_scratch.poison();
        ctx.set_gelu_fusion(fusion);
        const long fused_before = ctx.gelu_fused_calls();
        kc::matmul_backward_gelu(ctx, d_dpre.data(), d_scratch.data(), d_dw.f32(), d_db.f32(),
                                 d_dout.data(), d_inp.data(), d_pre.data(), d_w.data(), s.N, s.C,
                                 s.OC, dt, {});
        check_close("matmul backward through GELU: d(pre)", d_dpre.to_host(), dpre_ref,
                    tolerance(dt));
        check_accumulated("matmul backward through GELU: dweight", d_dw.to_host(), dw_start,
                          dw_grad, tolerance(dt));
        check_accumulated("matmul backward through GELU: dbias", d_db.to_host(), db_start, db_grad,
                          tolerance(dt));
        check_gelu_fusion("DGELU", fusion && s.C % 8 == 0, dt, ctx.gelu_fused_calls() > fused_before,
                          s);
      }
    }
  }
}

TEST_CASE("CUDA matmul backward can overwrite dinp instead of adding to it", "[cuda]") {
  kc::CublasLtContext ctx(device_tracker());
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const MmShape& s : kShapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " C=" << s.C << " OC=" << s.OC);
      const std::size_t NC = std::size_t(s.N) * s.C, NOC = std::size_t(s.N) * s.OC;
      const auto inp = rounded(randn(NC, 720), dt);
      const auto weight = rounded(randn(std::size_t(s.OC) * s.C, 721, 0.3), dt);
      const auto dout = rounded(randn(NOC, 722), dt);
      std::vector<float> dinp_ref(NC, 0.0f), dw_ref(std::size_t(s.OC) * s.C, 0.0f);
      cpu::matmul_backward(dinp_ref.data(), dw_ref.data(), static_cast<float*>(nullptr), dout.data(),
                           inp.data(), weight.data(), s.N, s.C, s.OC);
      DeviceArray d_inp = DeviceArray::from(inp, dt), d_w = DeviceArray::from(weight, dt),
                  d_dout = DeviceArray::from(dout, dt), d_dinp(NC, dt),
                  d_dw = DeviceArray::from(zeros(dw_ref.size()), DType::F32, pptrain::MemCategory::Grads);
      d_dinp.poison();  // NaN: an overwrite must never read it
      kc::matmul_backward(ctx, d_dinp.data(), d_dw.f32(), nullptr, d_dout.data(), d_inp.data(),
                          d_w.data(), s.N, s.C, s.OC, dt, {}, /*accumulate_dinp=*/false);
      check_close("matmul dinp, overwritten", d_dinp.to_host(), dinp_ref, tolerance(dt));
    }
  }
}

#if !PPTRAIN_CUDA_EMULATED  // the emulated builds have no cuBLASLt, so no plans
TEST_CASE("CUDA matmul asks cuBLASLt once per call shape and uses each call's pointers",
          "[cuda]") {
  kc::CublasLtContext ctx(device_tracker());
  const DType dt = DType::BF16;
  // A call on fresh buffers of a shape seen before reuses its plan; the results must still be
  // the new inputs' (a plan holding the first call's bias pointer would fail here).
  auto forward = [&](int N, int C, int OC, std::uint64_t seed, std::size_t out_offset) {
    const auto inp = rounded(randn(std::size_t(N) * C, seed), dt);
    const auto weight = rounded(randn(std::size_t(OC) * C, seed + 1, 0.3), dt);
    const auto bias = rounded(randn(OC, seed + 2), dt);
    std::vector<float> ref(std::size_t(N) * OC);
    cpu::matmul_forward(ref.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    DeviceArray d_inp = DeviceArray::from(inp, dt), d_w = DeviceArray::from(weight, dt),
                d_bias = DeviceArray::from(bias, dt), d_out(ref.size() + out_offset, dt);
    d_out.poison();
    char* out = static_cast<char*>(d_out.data()) + out_offset * kc::dtype_size(dt);
    kc::matmul_forward(ctx, out, d_inp.data(), d_w.data(), d_bias.data(), N, C, OC, dt, {});
    const auto got = d_out.to_host();
    check_close("matmul_forward", std::vector<float>(got.begin() + out_offset, got.end()), ref,
                tolerance(dt));
  };
  forward(64, 32, 48, 900, 0);
  const long plans = ctx.matmul_plans();
  CHECK(plans == 1);
  forward(64, 32, 48, 910, 0);
  CHECK(ctx.matmul_plans() == plans);      // same shape, new pointers
  forward(64, 32, 56, 920, 0);
  CHECK(ctx.matmul_plans() == plans + 1);  // another shape
  forward(64, 32, 48, 930, 8);
  CHECK(ctx.matmul_plans() == plans + 2);  // an output 16-byte aligned, not 256: asked again
}
#endif
