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

// What a CPU block keeps per micro-batch for its backward, including the (B,NH,T,T)
// attention probabilities.
struct CpuBlockLayout {
  std::size_t ln1, ln1_mean, ln1_rstd, qkv, att, atty, res2, ln2, ln2_mean, ln2_rstd, fch,
      fch_gelu, out, total;
  CpuBlockLayout(std::size_t B, std::size_t T, std::size_t C, std::size_t NH) {
    const std::size_t N = B * T;
    FloatCarver c;
    ln1 = c.take(N * C);
    ln1_mean = c.take(N);
    ln1_rstd = c.take(N);
    qkv = c.take(N * 3 * C);
    att = c.take(B * NH * T * T);
    atty = c.take(N * C);
    res2 = c.take(N * C);
    ln2 = c.take(N * C);
    ln2_mean = c.take(N);
    ln2_rstd = c.take(N);
    fch = c.take(N * 4 * C);
    fch_gelu = c.take(N * 4 * C);
    out = c.take(N * C);
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
struct CudaBlockLayout {
  std::size_t ln1, ln1_mean, ln1_rstd, qkv, atty, lse, res2, ln2, ln2_mean, ln2_rstd, fch,
      fch_gelu, out, total;
  CudaBlockLayout(std::size_t B, std::size_t T, std::size_t C, std::size_t NH, std::size_t es) {
    const std::size_t N = B * T;
    ByteCarver c;
    ln1 = c.take(N * C * es);
    ln1_mean = c.take(N * 4);
    ln1_rstd = c.take(N * 4);
    qkv = c.take(N * 3 * C * es);
    atty = c.take(N * C * es);
    lse = c.take(B * NH * T * 4);
    res2 = c.take(N * C * es);
    ln2 = c.take(N * C * es);
    ln2_mean = c.take(N * 4);
    ln2_rstd = c.take(N * 4);
    fch = c.take(N * 4 * C * es);       // GELU's input (the fc pre-activation)
    fch_gelu = c.take(N * 4 * C * es);  // GELU's output
    out = c.take(N * C * es);
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

}  // namespace pptrain
