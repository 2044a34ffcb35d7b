// The CUDA backend's ops: host wrappers callable from plain C++ (g++). Each op mirrors its CPU
// twin in kernels/<op>.h (same names, argument order and shapes; read the twin for the math)
// and adds a storage type `dt` and a stream. All pointers are device pointers.
//
// Conventions, for both dtypes:
// - `void*` tensors are stored in `dt` (fp32, or bf16 as 16-bit words): activations, their
//   gradients, and the weights the forward reads. Math is fp32 in registers.
// - `float*` tensors are always fp32: parameter gradients (dweight, dbias, dwte, dwpe: they sum
//   over micro-batches, which bf16 would round away), layernorm mean/rstd, attention
//   logsumexp, losses, AdamW master weights and moments.
// - Every backward ACCUMULATES (+=) into its gradient outputs, as on the CPU.
// - Sizes of zero are allowed and do nothing; bad shapes throw pptrain::Error; every kernel
//   launch is checked. Calls are asynchronous on `stream`.
// - Reductions are deterministic: a fixed shape gives bitwise identical results run to run
//   (no float atomics anywhere).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/memory.h"
#include "kernels/adamw.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain::kernels::cuda {

// ---- encoder: inp (B,T) int32 ids in [0,Vp), wte (Vp,C), wpe (maxT,C) with T <= maxT ----
// out (B,T,C) = wte[inp[b,t]] + wpe[t].
void encoder_forward(void* out, const int* inp, const void* wte, const void* wpe, int B, int T,
                     int C, DType dt, Stream stream);
// Bytes of device scratch encoder_backward needs for these sizes.
std::size_t encoder_backward_scratch_bytes(int B, int T, int Vp);
// dwte (Vp,C) += sum of dout rows by token id; dwpe (T rows of (maxT,C)) += sum over b.
// Deterministic without float atomics: (id, position) pairs are radix-sorted (stable), then
// each id's rows are summed in position order by the one warp that owns (id, 32 channels).
void encoder_backward(float* dwte, float* dwpe, const void* dout, const int* inp, int B, int T,
                      int C, int Vp, DType dt, void* scratch, std::size_t scratch_bytes,
                      Stream stream);

// ---- layernorm over the last axis, eps 1e-5: inp/out (N,C), weight/bias (C), mean/rstd (N) ----
void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight,
                       const void* bias, int N, int C, DType dt, Stream stream);
// residual = a + b (stored in dt), then out = LayerNorm(residual) of the stored residual.
void residual_layernorm_forward(void* residual, void* out, float* mean, float* rstd, const void* a,
                                const void* b, const void* weight, const void* bias, int N, int C,
                                DType dt, Stream stream);
// dinp (N,C) += ..., dweight (C) += ..., dbias (C) += ... (fp32). dinp null skips the input
// gradient; dweight and dbias both null skip the parameter gradients (frozen parameters; the
// benchmark times the two parts apart). With dinp_base (N,C) given, dinp = dinp_base + ...
// instead (dinp's old contents are not read; it may be dinp itself): a residual branch's
// gradient joins without a copy first.
// fuse_param_sums: in bf16 (C even, up to 2560), dweight and dbias summed in the dinp pass
// instead of a second read of dout and inp (the same dinp; the sums in another order). Off by
// default until a GPU run times it (the kernel benchmark's alternative row).
void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                        const void* inp, const void* weight, const float* mean, const float* rstd,
                        int N, int C, DType dt, Stream stream, const void* dinp_base = nullptr,
                        bool fuse_param_sums = false);

// ---- GELU (tanh approximation), elementwise over n values ----
void gelu_forward(void* out, const void* inp, std::size_t n, DType dt, Stream stream);
// dinp += gelu'(inp) * dout. dinp must not alias dout (the += would add dout itself).
void gelu_backward(void* dinp, const void* inp, const void* dout, std::size_t n, DType dt,
                   Stream stream);

// ---- causal self-attention: inp (B,T,3C) = [q | k | v], NH heads of hs = C/NH <= 128 ----
// out (B,T,C); lse (B,NH,T) = log sum_{t2<=t} exp(scale q_t.k_t2), the per-row softmax
// statistic the backward uses to recompute probabilities (the (T,T) matrix is never stored).
//
// Block shapes of the bf16 tensor-core kernels at hs <= 64 (fp32 storage, and hs > 64, where
// registers allow one shape only, ignore them). Every shape gives bitwise the same results:
// they differ in speed only, which pptrain_bench_cuda's attention sweep measures on a GPU; the
// defaults are the shapes the ops use. Bad values throw.
struct AttentionTiling {
  int forward_warps = 4;      // 4 or 8 warps per forward block, each 16 query rows per m-tile
  int forward_row_tiles = 2;  // m-tiles per warp: 1 or 2
  int dq_warps = 4;           // 4 or 8: the dq kernel's blocks own 16 x warps query rows
  int dkv_warps = 4;          // 4 or 8: the dk/dv kernel's blocks own 16 x warps keys
  int dkv_query_rows = 64;    // query rows per tile the dk/dv kernel stages: 32 or 64
  bool hold_row_fragments = false;  // backward: keep the block's own rows' mma fragments in
                                    // registers (+32 registers, fewer shared-memory loads)
};
void attention_forward(void* out, float* lse, const void* inp, int B, int T, int C, int NH,
                       DType dt, Stream stream, const AttentionTiling& tiling = {});
// dinp (B,T,3C) += d/d(q,k,v). Needs the forward's out and lse. With accumulate false,
// dinp = d/d(q,k,v) instead: its old contents are never read (no zeroing pass first).
void attention_backward(void* dinp, const void* dout, const void* inp, const void* out,
                        const float* lse, int B, int T, int C, int NH, DType dt, Stream stream,
                        bool accumulate = true, const AttentionTiling& tiling = {});

// ---- fused classifier: logits (N,Vp), real columns [0,V), targets (N) in [0,V) ----
// losses (N) = -log softmax(logits)[target] (fp32). With compute_grad, logits are overwritten
// with dloss_scale * (softmax - onehot), padded columns with 0. One pass per row, no
// probabilities stored. hold_row: bf16 rows up to 65536 columns held in registers between
// the two passes instead of read twice (bitwise the same results). Off by default until a GPU
// run shows it faster: the kernel benchmark times both (kernels/cuda/README.md).
void classifier_forward_backward(void* logits, float* losses, const int* targets, int N, int V,
                                 int Vp, float dloss_scale, bool compute_grad, DType dt,
                                 Stream stream, bool hold_row = false);

// ---- matmul through cuBLASLt: weight (OC,C) as in PyTorch, inp (N,C), out (N,OC) ----
// One cuBLASLt handle and one workspace (counted as Workspace in `tracker`). Not thread-safe,
// and one stream at a time: matmuls on two streams that may overlap would share the
// workspace, so give each concurrent stream its own context. fp32 mode computes in true fp32
// (no TF32); bf16 mode reads bf16 and accumulates in fp32.
class CublasLtContext {
 public:
  explicit CublasLtContext(MemoryTracker& tracker, std::size_t workspace_bytes = kCublasLtWorkspaceBytes);
  ~CublasLtContext();
  CublasLtContext(const CublasLtContext&) = delete;
  CublasLtContext& operator=(const CublasLtContext&) = delete;

  // Whether matmul_forward may use cuBLASLt's GELU_AUX epilogue and matmul_backward_gelu its
  // DGELU epilogue (default on). Off forces the unfused paths (gelu_forward / gelu_backward
  // kernels); tests compare the two.
  void set_gelu_fusion(bool on);
  // How many GELU matmuls (matmul_forward with gelu_pre, matmul_backward_gelu) ran fused in a
  // cuBLASLt epilogue / unfused since construction.
  long gelu_fused_calls() const;
  long gelu_unfused_calls() const;
  // How many different calls (shapes, epilogues, pointer alignments) cuBLASLt's heuristic was
  // asked about: each is asked once and its algorithm reused. 0 in the emulated build.
  long matmul_plans() const;
  // Whether matmul_backward may take dbias from cuBLASLt's BGRADB epilogue on the dweight
  // product (into a scratch, then added: the epilogue overwrites, dbias accumulates) instead of
  // the column-sum kernel's pass over dout. Off by default until a GPU run times it (the kernel
  // benchmark's "dbias in the epilogue" rows); where cuBLASLt has no algorithm for it, the
  // column sums run. The emulated build ignores it.
  void set_bias_grad_epilogue(bool on);
  long bias_grad_epilogue_calls() const;  // matmul_backward calls that took dbias that way
  // For the kernel benchmark: calls planned while k > 0 run the heuristic's (k+1)-th answer
  // instead of its first (a call with fewer answers has "no algorithm"), to measure what the
  // first answer leaves. 0, the default, restores the normal plans. Ignored when emulated.
  void set_heuristic_pick(int k);

  struct Impl;  // defined in matmul.cu
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// out = inp @ weight^T + bias (bias (OC) may be null). With gelu_pre non-null (N,OC): gelu_pre
// receives that pre-activation and out = GELU(gelu_pre). Fused in the cuBLASLt epilogue
// (GELU_AUX[_BIAS]) when OC % 8 == 0, gelu_pre is 16-byte aligned and cuBLASLt has an
// algorithm; otherwise the bias epilogue writes gelu_pre and gelu_forward makes out.
void matmul_forward(CublasLtContext& ctx, void* out, const void* inp, const void* weight,
                    const void* bias, int N, int C, int OC, DType dt, Stream stream,
                    void* gelu_pre = nullptr);
// dinp (N,C) += dout @ weight, dweight (OC,C) += dout^T @ inp (fp32), dbias (OC) += column
// sums of dout (fp32); each skipped when null (a split backward runs them apart). The backward of the layer after
// a GELU is matmul_backward_gelu (below), which also applies GELU's derivative. With accumulate_dinp false, dinp =
// dout @ weight instead: its old contents are never read (cuBLASLt's beta = 0), which saves
// the zeroing pass a fresh gradient buffer would otherwise need.
void matmul_backward(CublasLtContext& ctx, void* dinp, float* dweight, float* dbias,
                     const void* dout, const void* inp, const void* weight, int N, int C, int OC,
                     DType dt, Stream stream, bool accumulate_dinp = true);

// The backward of a layer whose input is inp = GELU(gelu_pre) (N,C), such as an MLP's output
// projection: dgelu_pre (N,C) = (dout @ weight) * gelu'(gelu_pre) is written (its old contents
// are never read), dweight and dbias += as in matmul_backward (null skips them). Fused in cuBLASLt's DGELU
// epilogue when C % 8 == 0, both pre-activation pointers are 16-byte aligned and an algorithm
// exists (one pass over (N,C) instead of three); otherwise dout @ weight goes to `scratch`
// (N,C in dt; unused when fused, may then be null) and gelu_backward makes dgelu_pre.
void matmul_backward_gelu(CublasLtContext& ctx, void* dgelu_pre, void* scratch, float* dweight,
                          float* dbias, const void* dout, const void* inp, const void* gelu_pre,
                          const void* weight, int N, int C, int OC, DType dt, Stream stream);

// ---- AdamW (kernels/adamw.h) over a stage's tensors ----
// params, grads, m, v (fp32 master, gradients, moments) hold every tensor at its word offset;
// params_bf16, when not null, is the bf16 working copy at the same offsets, written with
// stochastic rounding from bits hashed from (tensor seed, index within the tensor): pass new
// seeds every step (e.g. stream_key(seed, name, t)) and two runs with the same seeds agree
// bitwise. One launch covers up to kAdamwTensorsPerLaunch tensors, so a stage's step is a
// few launches, not one per tensor (GPT-2 124M has 148 tensors, many of 768 values).
struct AdamwTensor {
  std::size_t offset = 0, n = 0;  // words
  float weight_decay = 0.0f;
  std::uint64_t seed = 0;  // for the bf16 rounding only
};
struct AdamwBuffers {
  float* params = nullptr;
  std::uint16_t* params_bf16 = nullptr;
  const float* grads = nullptr;
  float* m = nullptr;
  float* v = nullptr;
};
constexpr int kAdamwTensorsPerLaunch = 64;  // the kernel's arguments: about 2 KiB of the 4 KiB
void adamw_update(const AdamwBuffers& buffers, const std::vector<AdamwTensor>& tensors,
                  const AdamwStep& step, Stream stream);

// ---- global gradient norm (kernels/grad_norm.h) ----
// Bytes of device scratch sum_of_squares needs (independent of n).
inline std::size_t sum_of_squares_scratch_bytes() { return kSumOfSquaresScratchBytes; }
// *acc (one device double) += sum_i x_i^2, summed in double in a fixed order that depends on n
// only. Zero *acc first; call once per tensor or flat gradient array, then read it back.
void sum_of_squares(double* acc, const float* x, std::size_t n, void* scratch,
                    std::size_t scratch_bytes, Stream stream);
// *acc (one device double) += scale * sum_i x_i, in the same fixed order as sum_of_squares
// (same scratch): a micro-batch's mean loss from its per-token losses, with no host read.
void add_scaled_sum(double* acc, const float* x, std::size_t n, double scale, void* scratch,
                    std::size_t scratch_bytes, Stream stream);

// ---- elementwise: out = a + b over n values stored in dt (out may alias a or b) ----
// The block output (residual + MLP projection) and the sum of the two tied-wte gradients.
void add_vectors(void* out, const void* a, const void* b, std::size_t n, DType dt, Stream stream);

// ---- casts; bf16 values are 16-bit words (the high half of the fp32 bit pattern) ----
void cast_f32_to_bf16(std::uint16_t* dst, const float* src, std::size_t n, Stream stream);
void cast_bf16_to_f32(float* dst, const std::uint16_t* src, std::size_t n, Stream stream);
// Rounds up with probability (distance to the lower bf16) / (bf16 spacing): unbiased in
// expectation. Random bits from (seed, element index), as in adamw_update's bf16 copy.
void cast_f32_to_bf16_stochastic(std::uint16_t* dst, const float* src, std::size_t n,
                                 std::uint64_t seed, Stream stream);

}  // namespace pptrain::kernels::cuda
