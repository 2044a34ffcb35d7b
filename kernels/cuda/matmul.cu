// Linear layer on the GPU through cuBLASLt. weight (OC,C) as PyTorch stores it, inp (N,C),
// out (N,OC), all row-major in the storage type S; bias (OC) in S; dweight (OC,C) and dbias (OC)
// fp32.
//
// cuBLASLt is column-major, and a row-major (R,K) matrix is a column-major (K,R) one, so with
// W seen as (C,OC), inp as (C,N), dout as (OC,N), all column-major:
//   forward  out as (OC,N)      = W^T @ inp               (A = W transposed)
//   dinp     dinp as (C,N)     += W @ dout                (beta = 1; 0 to overwrite)
//   dweight  dweight as (C,OC) += inp @ dout^T            (B = dout transposed, beta = 1)
// with compute type fp32 (true fp32, no TF32) and scale type fp32; in bf16 mode A and B are
// bf16, D is bf16 for activations and fp32 for dweight (cuBLASLt supports both).
// GELU: cuBLASLt's GELU_AUX(_BIAS) epilogue is the same tanh approximation and stores the
// pre-activation for the backward. It needs the aux leading dimension (OC) divisible by 8; when
// that or an algorithm is missing, the bias epilogue writes the pre-activation and our
// gelu_forward kernel makes the output (same contract, one extra pass over (N,OC)).
#include <cublasLt.h>

#include <array>
#include <map>
#include <memory>

#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda/device_memory.h"

namespace pptrain::kernels::cuda {

namespace {
struct MatmulPlan;
// What cuBLASLt's heuristic sees of a call: transposes, types, shapes and leading dimensions,
// epilogue, and the alignments we promise for every pointer. Equal keys get the same algorithm.
using PlanKey = std::array<std::int64_t, 24>;
constexpr int kMaxHeuristicPick = 7;  // set_heuristic_pick: up to the heuristic's 8th answer
}  // namespace

struct CublasLtContext::Impl {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer workspace;
  bool gelu_fusion = true;
  long fused = 0, unfused = 0;
  bool bias_grad_epilogue = false;
  long bias_grad_epilogue_calls = 0;
  int heuristic_pick = 0;
  // The heuristic is asked once per key (a few microseconds of host time per call otherwise:
  // with small micro-batches a matmul's GPU time is about that much). Destroyed before the handle.
  std::map<PlanKey, std::unique_ptr<MatmulPlan>> plans;
  ~Impl();
};

CublasLtContext::CublasLtContext(MemoryTracker& tracker, std::size_t workspace_bytes)
    : impl_(std::make_unique<Impl>()) {
  CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  impl_->workspace = DeviceBuffer(tracker, MemCategory::Workspace, workspace_bytes);
}

CublasLtContext::~CublasLtContext() = default;

void CublasLtContext::set_gelu_fusion(bool on) { impl_->gelu_fusion = on; }
long CublasLtContext::matmul_plans() const { return static_cast<long>(impl_->plans.size()); }
long CublasLtContext::gelu_fused_calls() const { return impl_->fused; }
long CublasLtContext::gelu_unfused_calls() const { return impl_->unfused; }
void CublasLtContext::set_bias_grad_epilogue(bool on) { impl_->bias_grad_epilogue = on; }
long CublasLtContext::bias_grad_epilogue_calls() const { return impl_->bias_grad_epilogue_calls; }
void CublasLtContext::set_heuristic_pick(int k) {
  PPT_CHECK(k >= 0 && k <= kMaxHeuristicPick, "set_heuristic_pick: {} is not in [0, {}]", k,
            kMaxHeuristicPick);
  impl_->heuristic_pick = k;
}

namespace {

// ---- RAII for the cuBLASLt descriptors ----
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  MatmulDesc() { CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(d); }
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& value) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
  }
};

struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  Layout(cudaDataType_t type, int rows, int cols, int ld) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<std::uint64_t>(rows),
                                            static_cast<std::uint64_t>(cols), ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(l); }
};

struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  Preference() { CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p)); }
  ~Preference() { cublasLtMatmulPreferenceDestroy(p); }
  template <typename V>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const V& value) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(value)));
  }
};

cudaDataType_t cuda_type(DType dt) { return dt == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

// Largest power of two <= 256 dividing the address and the leading dimension in bytes: what we
// promise cuBLASLt, so its heuristic never picks a kernel that assumes more.
std::uint32_t alignment(const void* p, std::size_t ld_bytes) {
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p) | ld_bytes;
  std::uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al /= 2;
  return al;
}

struct Operand {
  const void* ptr;
  cudaDataType_t type;
  int rows, cols, ld;  // as stored, column-major
  std::size_t elem;
};

// A call's descriptors and the algorithm the heuristic chose for its key (none: status != OK
// or found == 0, kept so a missing epilogue is not asked about again every call).
struct MatmulPlan {
  MatmulDesc desc;
  Layout a, b, d;
  cublasLtMatmulAlgo_t algo{};
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  bool found = false;
  MatmulPlan(const Operand& A, const Operand& B, const Operand& D)
      : a(A.type, A.rows, A.cols, A.ld), b(B.type, B.rows, B.cols, B.ld), d(D.type, D.rows, D.cols, D.ld) {}
};

PlanKey plan_key(int pick, bool trans_a, bool trans_b, const Operand& A, const Operand& B,
                 const Operand& D, cublasLtEpilogue_t epilogue, const void* bias, const void* aux,
                 int aux_ld) {
  return {pick, trans_a, trans_b, A.type, A.rows, A.cols, A.ld, B.type, B.rows, B.cols, B.ld,
          D.type, D.rows, D.cols, D.ld, static_cast<std::int64_t>(epilogue), bias != nullptr,
          aux != nullptr, aux_ld, alignment(A.ptr, A.ld * A.elem), alignment(B.ptr, B.ld * B.elem),
          alignment(D.ptr, D.ld * D.elem),
          // bias and aux: the heuristic reads their pointers' alignment too.
          alignment(bias, 0), alignment(aux, static_cast<std::size_t>(aux_ld) * D.elem)};
}

// Asks the heuristic for one call's algorithm: what every call with this key then runs.
std::unique_ptr<MatmulPlan> make_plan(CublasLtContext::Impl& ctx, bool trans_a, bool trans_b,
                                      const Operand& A, const Operand& B, const Operand& D,
                                      cublasLtEpilogue_t epilogue, const void* bias, void* aux,
                                      int aux_ld) {
  auto plan = std::make_unique<MatmulPlan>(A, B, D);
  MatmulDesc& desc = plan->desc;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
  desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
  // Pointers go in before the heuristic: it reads them for their alignment.
  if (bias != nullptr) desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  if (aux != nullptr) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux);
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, static_cast<std::int64_t>(aux_ld));
  }
  Preference pref;
  const std::uint64_t ws = ctx.workspace.bytes();
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment(A.ptr, A.ld * A.elem));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment(B.ptr, B.ld * B.elem));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment(D.ptr, D.ld * D.elem));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment(D.ptr, D.ld * D.elem));
  const int pick = ctx.heuristic_pick;
  std::array<cublasLtMatmulHeuristicResult_t, kMaxHeuristicPick + 1> results{};
  int found = 0;
  plan->status = cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc.d, plan->a.l, plan->b.l, plan->d.l,
                                                plan->d.l, pref.p, pick + 1, results.data(), &found);
  plan->found = plan->status == CUBLAS_STATUS_SUCCESS && found > pick;
  if (plan->found) plan->algo = results[pick].algo;
  return plan;
}

// D (m,n) = op(A) @ op(B) + beta * D, column-major, with an optional epilogue. Returns false
// (when allow_missing) if cuBLASLt has no algorithm for this combination.
bool lt_matmul(CublasLtContext::Impl& ctx, bool trans_a, bool trans_b, const Operand& A,
               const Operand& B, const Operand& D, float beta, cublasLtEpilogue_t epilogue,
               const void* bias, void* aux, int aux_ld, cudaStream_t stream, bool allow_missing) {
  const PlanKey key = plan_key(ctx.heuristic_pick, trans_a, trans_b, A, B, D, epilogue, bias, aux,
                               aux_ld);
  auto it = ctx.plans.find(key);
  if (it == ctx.plans.end()) {
    it = ctx.plans.emplace(key, make_plan(ctx, trans_a, trans_b, A, B, D, epilogue, bias, aux, aux_ld))
             .first;
  }
  MatmulPlan& plan = *it->second;
  if (!plan.found) {
    if (allow_missing) return false;
    PPT_THROW("cuBLASLt has no algorithm for a {}x{}x{} matmul (A {}{}, B {}{}, epilogue {}; "
              "status {})",
              D.rows, D.cols, trans_a ? A.rows : A.cols, trans_a ? "T" : "N",
              static_cast<int>(A.type), trans_b ? "T" : "N", static_cast<int>(B.type),
              static_cast<int>(epilogue), static_cast<int>(plan.status));
  }
  // This call's pointers (same alignment as the plan's, by its key).
  if (bias != nullptr) plan.desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  if (aux != nullptr) plan.desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux);
  const float alpha = 1.0f;
  void* dptr = const_cast<void*>(D.ptr);
  CUBLAS_CHECK(cublasLtMatmul(ctx.handle, plan.desc.d, &alpha, A.ptr, plan.a.l, B.ptr, plan.b.l,
                              &beta, dptr, plan.d.l, dptr, plan.d.l, &plan.algo, ctx.workspace.data(),
                              ctx.workspace.bytes(), stream));
  return true;
}

}  // namespace

CublasLtContext::Impl::~Impl() {
  plans.clear();                                   // their descriptors first
  if (handle != nullptr) cublasLtDestroy(handle);  // no throw from a destructor
}

namespace {

// dbias[o] += sum_n dout[n,o] (column_sums.cuh: deterministic, the whole GPU).
template <typename S, int W>
struct BiasTerm {
  const S* dout;
  int OC;
  __device__ void operator()(int r, int o, float (&v)[1][W]) const {
    column_sums::load_adjacent<S, W>(dout + static_cast<std::size_t>(r) * OC + o, v[0]);
  }
};


}  // namespace

void matmul_forward(CublasLtContext& ctx, void* out, const void* inp, const void* weight,
                    const void* bias, int N, int C, int OC, DType dt, Stream stream,
                    void* gelu_pre) {
  checks::matmul_shape("matmul_forward", N, C, OC);
  if (N == 0) return;
  CublasLtContext::Impl& c = ctx.impl();
  const cudaStream_t s = to_cuda(stream);
  const cudaDataType_t t = cuda_type(dt);
  const std::size_t e = dtype_size(dt);
  const Operand A{weight, t, C, OC, C, e};  // trans: (OC,C)
  const Operand B{inp, t, C, N, C, e};
  const cublasLtEpilogue_t plain = bias != nullptr ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;

  if (gelu_pre == nullptr) {
    lt_matmul(c, true, false, A, B, Operand{out, t, OC, N, OC, e}, 0.0f, plain, bias, nullptr, 0, s,
              false);
    return;
  }
  const bool fusable = c.gelu_fusion && OC % 8 == 0 &&
                       reinterpret_cast<std::uintptr_t>(gelu_pre) % 16 == 0;
  if (fusable) {
    const cublasLtEpilogue_t gelu =
        bias != nullptr ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    if (lt_matmul(c, true, false, A, B, Operand{out, t, OC, N, OC, e}, 0.0f, gelu, bias, gelu_pre,
                  OC, s, true)) {
      ++c.fused;
      return;
    }
  }
  lt_matmul(c, true, false, A, B, Operand{gelu_pre, t, OC, N, OC, e}, 0.0f, plain, bias, nullptr, 0,
            s, false);
  gelu_forward(out, gelu_pre, static_cast<std::size_t>(N) * OC, dt, stream);
  ++c.unfused;
}

void matmul_backward(CublasLtContext& ctx, void* dinp, float* dweight, float* dbias,
                     const void* dout, const void* inp, const void* weight, int N, int C, int OC,
                     DType dt, Stream stream, bool accumulate_dinp) {
  checks::matmul_shape("matmul_backward", N, C, OC);
  if (N == 0) return;
  CublasLtContext::Impl& c = ctx.impl();
  const cudaStream_t s = to_cuda(stream);
  const cudaDataType_t t = cuda_type(dt);
  const std::size_t e = dtype_size(dt);
  const Operand dout_op{dout, t, OC, N, OC, e};
  if (dinp != nullptr) {
    lt_matmul(c, false, false, Operand{weight, t, C, OC, C, e}, dout_op,
              Operand{dinp, t, C, N, C, e}, accumulate_dinp ? 1.0f : 0.0f,
              CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0, s, false);
  }
  bool bias_done = false;
  if (dweight != nullptr) {
    const Operand inp_op{inp, t, C, N, C, e};
    const Operand dweight_op{dweight, CUDA_R_32F, C, OC, C, sizeof(float)};
    if (dbias != nullptr && c.bias_grad_epilogue) {
      // BGRADB sums B = dout^T over the product's k (= N rows) into OC values, of D's type
      // (fp32), overwriting: a scratch, then dbias += it.
      StreamScratch<float> bias_grad(static_cast<std::size_t>(OC), s);
      if (lt_matmul(c, false, true, inp_op, dout_op, dweight_op, 1.0f, CUBLASLT_EPILOGUE_BGRADB,
                    bias_grad.get(), nullptr, 0, s, true)) {
        add_vectors(dbias, dbias, bias_grad.get(), static_cast<std::size_t>(OC), DType::F32, stream);
        ++c.bias_grad_epilogue_calls;
        bias_done = true;
      }
    }
    if (!bias_done) {
      lt_matmul(c, false, true, inp_op, dout_op, dweight_op, 1.0f, CUBLASLT_EPILOGUE_DEFAULT,
                nullptr, nullptr, 0, s, false);
    }
  }
  if (dbias != nullptr && !bias_done) {
    dispatch_dtype(dt, [&](auto tag) {
      using S = typename decltype(tag)::type;
      const bool pairs = OC % 2 == 0 && reinterpret_cast<std::uintptr_t>(dout) % 4 == 0;
      column_sums::with_columns_per_thread<S>(pairs, [&](auto width) {
        constexpr int W = decltype(width)::value;
        column_sums::add<1, W>(column_sums::Outputs<1>{{dbias}},
                               BiasTerm<S, W>{static_cast<const S*>(dout), OC}, N, OC, s);
      });
    });
  }
}

void matmul_backward_gelu(CublasLtContext& ctx, void* dgelu_pre, void* scratch, float* dweight,
                          float* dbias, const void* dout, const void* inp, const void* gelu_pre,
                          const void* weight, int N, int C, int OC, DType dt, Stream stream) {
  checks::matmul_shape("matmul_backward_gelu", N, C, OC);
  if (N == 0) return;
  PPT_CHECK(dgelu_pre != nullptr && gelu_pre != nullptr,
            "matmul_backward_gelu: dgelu_pre and gelu_pre are required");
  CublasLtContext::Impl& c = ctx.impl();
  const cudaStream_t s = to_cuda(stream);
  const cudaDataType_t t = cuda_type(dt);
  const std::size_t e = dtype_size(dt);
  // The aux (pre-activation) shares D's leading dimension C: cuBLASLt wants it a multiple of 8.
  const bool fusable = c.gelu_fusion && C % 8 == 0 &&
                       reinterpret_cast<std::uintptr_t>(gelu_pre) % 16 == 0 &&
                       reinterpret_cast<std::uintptr_t>(dgelu_pre) % 16 == 0;
  // D = gelu'(aux) * (weight^T-side product); beta 0: the epilogue would apply gelu' to an
  // accumulated D as well, so this path only ever writes.
  if (fusable &&
      lt_matmul(c, false, false, Operand{weight, t, C, OC, C, e}, Operand{dout, t, OC, N, OC, e},
                Operand{dgelu_pre, t, C, N, C, e}, 0.0f, CUBLASLT_EPILOGUE_DGELU, nullptr,
                const_cast<void*>(gelu_pre), C, s, true)) {
    ++c.fused;
    matmul_backward(ctx, nullptr, dweight, dbias, dout, inp, weight, N, C, OC, dt, stream);
    return;
  }
  PPT_CHECK(scratch != nullptr, "matmul_backward_gelu: the unfused path needs scratch");
  matmul_backward(ctx, scratch, dweight, dbias, dout, inp, weight, N, C, OC, dt, stream,
                  /*accumulate_dinp=*/false);
  const std::size_t n = static_cast<std::size_t>(N) * C;
  zero_async(dgelu_pre, n * e, stream);
  gelu_backward(dgelu_pre, gelu_pre, scratch, n, dt, stream);
  ++c.unfused;
}

}  // namespace pptrain::kernels::cuda
