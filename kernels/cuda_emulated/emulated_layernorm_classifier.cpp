// Emulated layernorm and fused classifier (kernels/cuda/layernorm.cu, classifier.cu): the CPU
// twins in fp32 on fp32 views of the stored tensors, with the real ops' shape checks.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/classifier.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda_emulated/emulated_common.h"
#include "kernels/layernorm.h"

namespace pptrain::kernels::cuda {

void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight,
                       const void* bias, int N, int C, DType dt, Stream) {
  checks::layernorm_shape(N, C);
  emulated::check_dtype(dt);
  if (N == 0) return;
  PPT_CHECK(C > 0, "layernorm: C must be positive");
  const std::size_t nc = static_cast<std::size_t>(N) * C;
  emulated::F32View x(inp, nc, dt), w(weight, C, dt), b(bias, C, dt);
  emulated::F32View y(out, nc, dt, false);
  cpu::layernorm_forward(y.data(), mean, rstd, x.data(), w.data(), b.data(), N, C);
  y.store();
}

void residual_layernorm_forward(void* residual, void* out, float* mean, float* rstd, const void* a,
                                const void* b, const void* weight, const void* bias, int N, int C,
                                DType dt, Stream stream) {
  checks::layernorm_shape(N, C);
  emulated::check_dtype(dt);
  if (N == 0) return;
  PPT_CHECK(C > 0, "layernorm: C must be positive");
  if (dt == DType::F32) {
    cpu::residual_layernorm_forward(
        static_cast<float*>(residual), static_cast<float*>(out), mean, rstd,
        static_cast<const float*>(a), static_cast<const float*>(b),
        static_cast<const float*>(weight), static_cast<const float*>(bias), N, C);
    return;
  }
  // bf16: the residual is rounded when stored and normalised as stored, as on the GPU.
  add_vectors(residual, a, b, static_cast<std::size_t>(N) * C, dt, stream);
  layernorm_forward(out, mean, rstd, residual, weight, bias, N, C, dt, stream);
}

void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                        const void* inp, const void* weight, const float* mean, const float* rstd,
                        int N, int C, DType dt, Stream, const void* dinp_base,
                        bool /*fuse_param_sums: one CPU path*/) {
  checks::layernorm_shape(N, C);
  emulated::check_dtype(dt);
  if (N == 0 || C == 0) return;
  const std::size_t nc = static_cast<std::size_t>(N) * C;
  emulated::F32View dy(dout, nc, dt), x(inp, nc, dt), w(weight, C, dt);
  PPT_CHECK((dweight == nullptr) == (dbias == nullptr), "layernorm_backward: dweight and dbias go together");
  // The CPU twin computes both parts: the skipped one goes to scratch.
  std::vector<float> scratch_dx(dinp == nullptr ? nc : 0), scratch_dw(dweight == nullptr ? 2 * C : 0);
  const bool from_base = dinp_base != nullptr && dinp_base != dinp;
  emulated::F32View dx(dinp, nc, dt, !from_base);
  if (from_base && dinp != nullptr) {  // dinp = base + ...: dinp's old contents are not read
    emulated::F32View base(dinp_base, nc, dt);
    std::copy(base.data(), base.data() + nc, dx.data());
  }
  cpu::layernorm_backward(dinp ? dx.data() : scratch_dx.data(), dweight ? dweight : scratch_dw.data(),
                          dbias ? dbias : scratch_dw.data() + C, dy.data(), x.data(), w.data(), mean,
                          rstd, N, C);
  if (dinp != nullptr) dx.store();
}

void classifier_forward_backward(void* logits, float* losses, const int* targets, int N, int V,
                                 int Vp, float dloss_scale, bool compute_grad, DType dt, Stream,
                                 bool /*hold_row: one CPU path*/) {
  PPT_CHECK(N >= 0 && V > 0 && Vp >= V, "classifier: bad shape N={} V={} Vp={}", N, V, Vp);
  emulated::check_dtype(dt);
  if (N == 0) return;
  emulated::F32View z(logits, static_cast<std::size_t>(N) * Vp, dt, true);
  cpu::classifier_forward_backward(z.data(), losses, targets, N, V, Vp, dloss_scale,
                                   compute_grad);
  if (compute_grad) z.store();
}

}  // namespace pptrain::kernels::cuda
