// Emulated cuBLASLt matmuls (kernels/cuda/matmul.cu): OpenBLAS through the CPU twin in fp32.
// The context keeps what the real one keeps that callers can observe: the GELU-fusion switch,
// the fused/unfused counters, and a workspace counted as Workspace in the tracker.
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
long CublasLtContext::gelu_unfused_calls() const { return impl_->unfused; }

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
  PPT_CHECK(dweight != nullptr, "matmul_backward: dweight is required");
  const std::size_t nin = static_cast<std::size_t>(N) * C;
  emulated::F32View dy(dout, static_cast<std::size_t>(N) * OC, dt), x(inp, nin, dt),
      w(weight, static_cast<std::size_t>(OC) * C, dt);
  emulated::F32View dx(dinp, nin, dt, true);
  // Overwriting: the old contents are never read (they may be NaN), as with beta = 0.
  if (!accumulate_dinp && dinp != nullptr) std::fill(dx.data(), dx.data() + nin, 0.0f);
  cpu::matmul_backward(dx.data(), dweight, dbias, dy.data(), x.data(), w.data(), N, C, OC);
  dx.store();
}

}  // namespace pptrain::kernels::cuda
