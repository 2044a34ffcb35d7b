// Emulated cuBLASLt matmuls (kernels/cuda/matmul.cu): OpenBLAS through the CPU twin in fp32.
// The context keeps what the real one keeps that callers can observe: the GELU-fusion switch,
// the fused/unfused counters (forward GELU_AUX and backward DGELU), and a workspace counted as
// Workspace in the tracker.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda_emulated/emulated_common.h"
#include "kernels/gelu.h"
#include "kernels/matmul.h"

namespace pptrain::kernels::cuda {

struct CublasLtContext::Impl {
  DeviceBuffer workspace;
  bool gelu_fusion = true;
  long fused = 0, unfused = 0;
};

CublasLtContext::CublasLtContext(MemoryTracker& tracker, std::size_t workspace_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->workspace = DeviceBuffer(tracker, MemCategory::Workspace, workspace_bytes);
}

CublasLtContext::~CublasLtContext() = default;

void CublasLtContext::set_gelu_fusion(bool on) { impl_->gelu_fusion = on; }
long CublasLtContext::gelu_fused_calls() const { return impl_->fused; }
long CublasLtContext::matmul_plans() const { return 0; }
long CublasLtContext::gelu_unfused_calls() const { return impl_->unfused; }
void CublasLtContext::set_bias_grad_epilogue(bool) {}  // one CPU path for dbias
long CublasLtContext::bias_grad_epilogue_calls() const { return 0; }
void CublasLtContext::set_heuristic_pick(int) {}  // one CPU algorithm

namespace {


}  // namespace

void matmul_forward(CublasLtContext& ctx, void* out, const void* inp, const void* weight,
                    const void* bias, int N, int C, int OC, DType dt, Stream stream,
                    void* gelu_pre) {
  checks::matmul_shape("matmul_forward", N, C, OC);
  emulated::check_dtype(dt);
  if (N == 0) return;
  CublasLtContext::Impl& c = ctx.impl();
  const std::size_t nin = static_cast<std::size_t>(N) * C, nout = static_cast<std::size_t>(N) * OC;
  emulated::F32View x(inp, nin, dt), w(weight, static_cast<std::size_t>(OC) * C, dt),
      b(bias, static_cast<std::size_t>(OC), dt);
  if (gelu_pre == nullptr) {
    emulated::F32View y(out, nout, dt, false);
    cpu::matmul_forward(y.data(), x.data(), w.data(), b.data(), N, C, OC);
    y.store();
    return;
  }
  // The same rule as the real code; the emulation always "has an algorithm".
  const bool fusable = c.gelu_fusion && OC % 8 == 0 &&
                       reinterpret_cast<std::uintptr_t>(gelu_pre) % 16 == 0;
  emulated::F32View pre(gelu_pre, nout, dt, false);
  cpu::matmul_forward(pre.data(), x.data(), w.data(), b.data(), N, C, OC);
  pre.store();
  if (fusable) {
    // The epilogue applies GELU to the fp32 accumulator, not to the stored (rounded) aux.
    emulated::F32View y(out, nout, dt, false);
    cpu::gelu_forward(y.data(), pre.data(), nout);
    y.store();
    ++c.fused;
    return;
  }
  gelu_forward(out, gelu_pre, nout, dt, stream);
  ++c.unfused;
}

void matmul_backward(CublasLtContext&, void* dinp, float* dweight, float* dbias,
                     const void* dout, const void* inp, const void* weight, int N, int C, int OC,
                     DType dt, Stream, bool accumulate_dinp) {
  checks::matmul_shape("matmul_backward", N, C, OC);
  emulated::check_dtype(dt);
  if (N == 0) return;
  const std::size_t nin = static_cast<std::size_t>(N) * C;
  emulated::F32View dy(dout, static_cast<std::size_t>(N) * OC, dt), x(inp, nin, dt),
      w(weight, static_cast<std::size_t>(OC) * C, dt);
  emulated::F32View dx(dinp, nin, dt, true);
  // Overwriting: the old contents are never read (they may be NaN), as with beta = 0.
  if (!accumulate_dinp && dinp != nullptr) std::fill(dx.data(), dx.data() + nin, 0.0f);
  cpu::matmul_backward(dx.data(), dweight, dbias, dy.data(), x.data(), w.data(), N, C, OC);
  dx.store();
}

void matmul_backward_gelu(CublasLtContext& ctx, void* dgelu_pre, void* scratch, float* dweight,
                          float* dbias, const void* dout, const void* inp, const void* gelu_pre,
                          const void* weight, int N, int C, int OC, DType dt, Stream stream) {
  checks::matmul_shape("matmul_backward_gelu", N, C, OC);
  emulated::check_dtype(dt);
  if (N == 0) return;
  PPT_CHECK(dgelu_pre != nullptr && gelu_pre != nullptr,
            "matmul_backward_gelu: dgelu_pre and gelu_pre are required");
  CublasLtContext::Impl& c = ctx.impl();
  // The same rule as the real code; the emulation always "has an algorithm".
  const bool fusable = c.gelu_fusion && C % 8 == 0 &&
                       reinterpret_cast<std::uintptr_t>(gelu_pre) % 16 == 0 &&
                       reinterpret_cast<std::uintptr_t>(dgelu_pre) % 16 == 0;
  const std::size_t nin = static_cast<std::size_t>(N) * C;
  emulated::F32View dy(dout, static_cast<std::size_t>(N) * OC, dt), x(inp, nin, dt),
      w(weight, static_cast<std::size_t>(OC) * C, dt);
  std::vector<float> dx(nin, 0.0f);  // dout @ weight, the fp32 accumulator
  cpu::matmul_backward(dx.data(), dweight, dbias, dy.data(), x.data(), w.data(), N, C, OC);
  if (fusable) {
    // The epilogue multiplies the fp32 accumulator by gelu' of the stored pre-activation.
    emulated::F32View pre(gelu_pre, nin, dt), out(dgelu_pre, nin, dt, false);
    std::fill(out.data(), out.data() + nin, 0.0f);
    cpu::gelu_backward(out.data(), pre.data(), dx.data(), nin);
    out.store();
    ++c.fused;
    return;
  }
  PPT_CHECK(scratch != nullptr, "matmul_backward_gelu: the unfused path needs scratch");
  emulated::F32View tmp(scratch, nin, dt, false);
  std::copy(dx.begin(), dx.end(), tmp.data());
  tmp.store();
  zero_async(dgelu_pre, nin * dtype_size(dt), stream);
  gelu_backward(dgelu_pre, gelu_pre, scratch, nin, dt, stream);
  ++c.unfused;
}

}  // namespace pptrain::kernels::cuda
