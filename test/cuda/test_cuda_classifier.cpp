// [cuda] fused classifier (softmax + cross-entropy + dlogits) against the CPU twin
// (kernels/classifier.h), fp32 and bf16 storage, with padded vocabularies.
#include "cuda_test_util.h"
#include "kernels/classifier.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct ClsShape {
  int N, V, Vp;
};
// Tiny padded vocab (7 of 8), no padding (V = Vp = 1000), GPT-2's 50257 padded to 50304, a
// Llama-sized 32000 and one over 65536 columns. bf16 rows take the 8-column packs when
// Vp % 8 == 0, column pairs at Vp = 38 (padding inside the last pair), the one-column kernel
// at Vp = 9 (odd).
const ClsShape kShapes[] = {{1, 7, 8},   {5, 7, 8},   {7, 1000, 1000}, {3, 50257, 50304},
                            {2, 32000, 32000}, {2, 65599, 65600}, {3, 37, 38}, {4, 9, 9}};

}  // namespace

TEST_CASE("CUDA classifier matches the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const ClsShape& s : kShapes) {
      for (const bool compute_grad : {true, false}) {
        INFO("dtype " << kc::dtype_name(dt) << ", N=" << s.N << " V=" << s.V << " Vp=" << s.Vp
                      << " compute_grad=" << compute_grad);
        const std::size_t NVp = std::size_t(s.N) * s.Vp;
        // Padded columns hold random values too: the kernel must ignore them.
        const auto logits = rounded(randn(NVp, 600, 3.0), dt);
        const auto targets = random_ids(s.N, s.V, 601);
        const float dloss_scale = 0.37f;

        auto logits_ref = logits;
        std::vector<float> losses_ref(s.N);
        cpu::classifier_forward_backward(logits_ref.data(), losses_ref.data(), targets.data(), s.N,
                                         s.V, s.Vp, dloss_scale, compute_grad);

        DeviceArray d_logits = DeviceArray::from(logits, dt), d_losses(s.N, DType::F32);
        d_losses.poison();
        DeviceInts d_targets(targets);
        kc::classifier_forward_backward(d_logits.data(), d_losses.f32(), d_targets.data(), s.N,
                                        s.V, s.Vp, dloss_scale, compute_grad, dt, {});
        // Losses are fp32 math on identical inputs in both modes.
        check_close("classifier losses", d_losses.to_host(), losses_ref, kF32Tol);
        const auto result = d_logits.to_host();
        if (compute_grad) {
          check_close("classifier dlogits", result, logits_ref, tolerance(dt));
          int nonzero_padding = 0;
          for (int n = 0; n < s.N; ++n) {
            for (int i = s.V; i < s.Vp; ++i) nonzero_padding += result[std::size_t(n) * s.Vp + i] != 0.0f;
          }
          CHECK(nonzero_padding == 0);
        } else {
          CHECK(result == logits);  // untouched without compute_grad
        }
      }
    }
  }
}

TEST_CASE("CUDA classifier: a bf16 row held in registers gives bitwise what two reads give",
          "[cuda]") {
  // 16, 4 and 8 packs a thread held; 65600 columns are read twice either way.
  for (const ClsShape& s : {ClsShape{3, 50257, 50304}, ClsShape{2, 1000, 1000},
                            ClsShape{2, 32000, 32000}, ClsShape{1, 65599, 65600}}) {
    INFO("N=" << s.N << " V=" << s.V << " Vp=" << s.Vp);
    const auto logits = rounded(randn(std::size_t(s.N) * s.Vp, 602, 3.0), DType::BF16);
    const auto targets = random_ids(s.N, s.V, 603);
    DeviceInts d_targets(targets);
    std::vector<float> results[2], losses[2];
    for (const bool hold_row : {true, false}) {
      DeviceArray d_logits = DeviceArray::from(logits, DType::BF16), d_losses(s.N, DType::F32);
      d_losses.poison();
      kc::classifier_forward_backward(d_logits.data(), d_losses.f32(), d_targets.data(), s.N, s.V,
                                      s.Vp, 0.37f, true, DType::BF16, {}, hold_row);
      results[hold_row] = d_logits.to_host();
      losses[hold_row] = d_losses.to_host();
    }
    CHECK(results[0] == results[1]);
    CHECK(losses[0] == losses[1]);
  }
}
