// Where each backend keeps a micro-batch's activations, and how it lays out its parameters:
// the offsets the stage models carve their buffers with, and the sizes the memory plan
// (model/stage_footprint.h) counts. Pure arithmetic, in every build: `pptrain plan` sizes a
// GPU run on a machine without one. N = B*T rows throughout.
#pragma once

#include <cstddef>

namespace pptrain {

// CPU backend: offsets and sizes in floats, packed.
struct FloatCarver {
  std::size_t used = 0;
  std::size_t take(std::size_t n) {
    const std::size_t at = used;
    used += n;
    return at;
  }
};

// Offset of a piece a layout does not carve (Recompute::Selective's pointwise outputs).
inline constexpr std::size_t kNotKept = static_cast<std::size_t>(-1);

// What a CPU block keeps per micro-batch for its backward, including the (B,NH,T,T)
// attention probabilities. keeps_pointwise false (Recompute::Selective): not ln1, ln2 and
// fch_gelu, which CpuPointwiseLayout's workspace holds and the backward remakes.
struct CpuBlockLayout {
  std::size_t ln1, ln1_mean, ln1_rstd, qkv, att, atty, res2, ln2, ln2_mean, ln2_rstd, fch,
      fch_gelu, out, total;
  CpuBlockLayout(std::size_t B, std::size_t T, std::size_t C, std::size_t NH,
                 bool keeps_pointwise = true) {
    const std::size_t N = B * T;
    FloatCarver c;
    auto pointwise = [&](std::size_t n) { return keeps_pointwise ? c.take(n) : kNotKept; };
    ln1 = pointwise(N * C);
    ln1_mean = c.take(N);
    ln1_rstd = c.take(N);
    qkv = c.take(N * 3 * C);
    att = c.take(B * NH * T * T);
    atty = c.take(N * C);
    res2 = c.take(N * C);
    ln2 = pointwise(N * C);
    ln2_mean = c.take(N);
    ln2_rstd = c.take(N);
    fch = c.take(N * 4 * C);
    fch_gelu = pointwise(N * 4 * C);
    out = c.take(N * C);
    total = c.used;
  }
};

// Recompute::Selective's workspace, one per model: a block's ln1, ln2 and fch_gelu (6 of its
// 16 (N,C) units), written by its forward and remade by its backward from the kept ln1
// input, res2 and fch with the same kernels (so bitwise the same); and the statistics the
// remaking layernorms write (equal to the kept ones, not read).
struct CpuPointwiseLayout {
  std::size_t ln1, ln2, fch_gelu, mean, rstd, total;
  CpuPointwiseLayout(std::size_t N, std::size_t C) {
    FloatCarver c;
    ln1 = c.take(N * C);
    ln2 = c.take(N * C);
    fch_gelu = c.take(N * 4 * C);
    mean = c.take(N);
    rstd = c.take(N);
    total = c.used;
  }
};

// The head keeps no logits: its forward makes them in the model's one logits workspace and,
// with a gradient, turns them at once into dlnf (N,C) and the LM head's weight gradient, so
// a stage holding several micro-batches pays N x Vp once, not per micro-batch.
struct CpuHeadLayout {
  std::size_t lnf, lnf_mean, lnf_rstd, dlnf, losses, total;
  CpuHeadLayout(std::size_t N, std::size_t C) {
    FloatCarver c;
    lnf = c.take(N * C);
    lnf_mean = c.take(N);
    lnf_rstd = c.take(N);
    dlnf = c.take(N * C);
    losses = c.take(N);
    total = c.used;
  }
};

// CUDA backend: byte offsets, every piece on a 256-byte boundary (coalesced, vector loads).
inline constexpr std::size_t kDeviceAlignBytes = 256;
// Parameter tensors start every 128 elements: 256 bytes in the bf16 working copy too.
inline constexpr std::size_t kDeviceParamAlignFloats = 128;

inline std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }
// fp32 words a parameter tensor of `numel` values takes in the device layout.
inline std::size_t device_tensor_words(std::size_t numel) { return round_up(numel, kDeviceParamAlignFloats); }

struct ByteCarver {
  std::size_t used = 0;
  std::size_t take(std::size_t bytes) {
    const std::size_t at = used;
    used += round_up(bytes, kDeviceAlignBytes);
    return at;
  }
};

// What a CUDA block keeps per micro-batch; es = bytes per stored element. Statistics (mean,
// rstd, lse) are fp32; no attention probabilities (the backward recomputes them).
// keeps_pointwise false: as CpuBlockLayout's.
struct CudaBlockLayout {
  std::size_t ln1, ln1_mean, ln1_rstd, qkv, atty, lse, res2, ln2, ln2_mean, ln2_rstd, fch,
      fch_gelu, out, total;
  CudaBlockLayout(std::size_t B, std::size_t T, std::size_t C, std::size_t NH, std::size_t es,
                  bool keeps_pointwise = true) {
    const std::size_t N = B * T;
    ByteCarver c;
    auto pointwise = [&](std::size_t bytes) { return keeps_pointwise ? c.take(bytes) : kNotKept; };
    ln1 = pointwise(N * C * es);
    ln1_mean = c.take(N * 4);
    ln1_rstd = c.take(N * 4);
    qkv = c.take(N * 3 * C * es);
    atty = c.take(N * C * es);
    lse = c.take(B * NH * T * 4);
    res2 = c.take(N * C * es);
    ln2 = pointwise(N * C * es);
    ln2_mean = c.take(N * 4);
    ln2_rstd = c.take(N * 4);
    fch = c.take(N * 4 * C * es);            // GELU's input (the fc pre-activation)
    fch_gelu = pointwise(N * 4 * C * es);  // GELU's output
    out = c.take(N * C * es);
    total = c.used;
  }
};

struct CudaPointwiseLayout {  // as CpuPointwiseLayout, in bytes
  std::size_t ln1, ln2, fch_gelu, mean, rstd, total;
  CudaPointwiseLayout(std::size_t N, std::size_t C, std::size_t es) {
    ByteCarver c;
    ln1 = c.take(N * C * es);
    ln2 = c.take(N * C * es);
    fch_gelu = c.take(N * 4 * C * es);
    mean = c.take(N * 4);
    rstd = c.take(N * 4);
    total = c.used;
  }
};

struct CudaHeadLayout {  // as CpuHeadLayout: the logits live in the model's workspace
  std::size_t lnf, lnf_mean, lnf_rstd, dlnf, losses, total;
  CudaHeadLayout(std::size_t N, std::size_t C, std::size_t es) {
    ByteCarver c;
    lnf = c.take(N * C * es);
    lnf_mean = c.take(N * 4);
    lnf_rstd = c.take(N * 4);
    dlnf = c.take(N * C * es);
    losses = c.take(N * 4);
    total = c.used;
  }
};

// Where one block's activations are: P is float* (CPU, offsets in floats) or char* (CUDA,
// offsets in bytes); statistics are fp32 on both. att is the CPU's (B,NH,T,T) probabilities,
// lse the CUDA attention's (B,NH,T) logsumexp; the other backend's stays null.
template <class P>
struct BlockActivations {
  P ln1{}, qkv{}, atty{}, res2{}, ln2{}, fch{}, fch_gelu{}, out{};
  float *ln1_mean = nullptr, *ln1_rstd = nullptr, *ln2_mean = nullptr, *ln2_rstd = nullptr;
  float *att = nullptr, *lse = nullptr;
  // Selective's remaking layernorms write their statistics here (equal to the kept ones).
  float *remade_mean = nullptr, *remade_rstd = nullptr;
};

// A Cpu/CudaBlockLayout at `base`; the pieces it does not keep (kNotKept) from a
// Cpu/CudaPointwiseLayout at `pointwise` (Recompute::Selective's workspace).
template <class P, class Layout, class Pointwise>
BlockActivations<P> block_activations_at(P base, const Layout& l, P pointwise, const Pointwise& pl) {
  auto f32 = [](P at) { return reinterpret_cast<float*>(at); };
  auto piece = [&](std::size_t kept_at, std::size_t remade_at) {
    return kept_at != kNotKept ? base + kept_at : pointwise + remade_at;
  };
  BlockActivations<P> a;
  a.ln1 = piece(l.ln1, pl.ln1);
  a.ln2 = piece(l.ln2, pl.ln2);
  a.fch_gelu = piece(l.fch_gelu, pl.fch_gelu);
  a.qkv = base + l.qkv;
  a.atty = base + l.atty;
  a.res2 = base + l.res2;
  a.fch = base + l.fch;
  a.out = base + l.out;
  a.ln1_mean = f32(base + l.ln1_mean);
  a.ln1_rstd = f32(base + l.ln1_rstd);
  a.ln2_mean = f32(base + l.ln2_mean);
  a.ln2_rstd = f32(base + l.ln2_rstd);
  if constexpr (requires { l.att; }) a.att = f32(base + l.att);
  if constexpr (requires { l.lse; }) a.lse = f32(base + l.lse);
  if (pointwise != nullptr) {
    a.remade_mean = f32(pointwise + pl.mean);
    a.remade_rstd = f32(pointwise + pl.rstd);
  }
  return a;
}

}  // namespace pptrain
