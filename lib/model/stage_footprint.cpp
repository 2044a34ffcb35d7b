#include "model/stage_footprint.h"

#include "kernels/cuda/cuda_types.h"
#include "model/layer_gradients.h"
#include "model/param_table.h"
#include "model/stash_layout.h"

namespace pptrain {

namespace {

// Per-layer stash bytes, by backend: a CPU stash is one FloatBuffer per layer (plus the
// received input), a CUDA stash one allocation carved on 256-byte boundaries (plus token ids
// and targets on the device).
std::size_t cpu_stash_bytes(const GPT2Shape& shape, int first, int end, std::size_t B, Recompute r) {
  const bool full = r == Recompute::Full, keeps_pointwise = r != Recompute::Selective;
  const std::size_t T = shape.max_seq_len, C = shape.channels, N = B * T;
  std::size_t floats = first == 0 ? 0 : N * C;  // the first stage keeps host token ids
  for (int layer = first; layer < end; ++layer) {
    switch (shape.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding: floats += N * C; break;
      case LayerKind::LayerKindBlock:
        floats += full ? N * C : CpuBlockLayout(B, T, C, shape.n_head, keeps_pointwise).total;
        break;
      case LayerKind::LayerKindHead: floats += CpuHeadLayout(N, C).total; break;
    }
  }
  return floats * sizeof(float);
}

std::size_t cuda_stash_bytes(const GPT2Shape& shape, int first, int end, std::size_t B, Recompute r,
                             std::size_t es) {
  const bool full = r == Recompute::Full, keeps_pointwise = r != Recompute::Selective;
  const std::size_t T = shape.max_seq_len, C = shape.channels, N = B * T;
  ByteCarver c;
  c.take(first == 0 ? N * sizeof(int) : N * C * es);  // token ids, or the received input
  if (end == shape.num_layers()) c.take(N * sizeof(int));  // targets
  for (int layer = first; layer < end; ++layer) {
    switch (shape.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding: c.take(N * C * es); break;
      case LayerKind::LayerKindBlock:
        c.take(full ? N * C * es : CudaBlockLayout(B, T, C, shape.n_head, es, keeps_pointwise).total);
        break;
      case LayerKind::LayerKindHead: c.take(CudaHeadLayout(N, C, es).total); break;
    }
  }
  return c.used;
}

}  // namespace

std::size_t compute_device_footprint() { return kernels::cuda::kCublasLtWorkspaceBytes; }

std::size_t planned_encoder_scratch_bytes(int batch, int T) {
  return 4 * round_up(static_cast<std::size_t>(batch) * T * sizeof(int), kDeviceAlignBytes);
}

StageFootprint stage_footprint(const StageBackend& backend, const GPT2Shape& shape,
                               int first_layer, int end_layer, int batch) {
  ParamTable table;  // as StageModel's constructor builds it: the tied wte once
  bool has_block = false;
  for (int layer = first_layer; layer < end_layer; ++layer) {
    for (const ParamSpec& spec : shape.layer_params(layer)) table.add(spec);
    has_block = has_block || shape.layer_kind(layer) == LayerKind::LayerKindBlock;
  }
  const std::size_t B = batch, T = shape.max_seq_len, C = shape.channels, NC = B * T * C;
  const bool has_head = end_layer == shape.num_layers();
  const std::size_t logits = has_head ? B * T * shape.padded_vocab_size : 0;  // the logits workspace
  std::size_t kept_units = 0;
  for (int layer = first_layer; layer < end_layer; ++layer) kept_units += kept_gradient_units(shape.layer_kind(layer));

  StageFootprint f;
  if (!backend.cuda) {
    const std::size_t bytes = table.total_floats() * sizeof(float);
    f.params = bytes;
    f.grads = bytes;
    f.optimizer = 2 * bytes;
    f.workspace = ((2 + kBlockScratchUnits) * NC + logits) * sizeof(float);  // grad ping-pong, block scratch
    if (has_block) {
      f.recompute_workspace = CpuBlockLayout(B, T, C, shape.n_head).total * sizeof(float);
      f.selective_workspace = CpuPointwiseLayout(B * T, C).total * sizeof(float);
    }
    f.stash = cpu_stash_bytes(shape, first_layer, end_layer, B, Recompute::None);
    f.selective_stash = cpu_stash_bytes(shape, first_layer, end_layer, B, Recompute::Selective);
    f.full_stash = cpu_stash_bytes(shape, first_layer, end_layer, B, Recompute::Full);
    f.kept_gradients = kept_units * NC * sizeof(float);
    f.message = NC * sizeof(float);
    return f;
  }
  const std::size_t es = backend.element_bytes;
  std::size_t words = 0;
  for (const ParamEntry& e : table.entries()) words += device_tensor_words(e.spec.numel());
  f.params = words * sizeof(float) + (es == 2 ? words * 2 : 0);  // fp32 master (+ bf16 working copy)
  f.grads = words * sizeof(float);
  f.optimizer = 2 * words * sizeof(float);
  f.workspace = ((2 + kBlockScratchUnits) * NC + logits) * es + kernels::cuda::kSumOfSquaresScratchBytes +
                3 * sizeof(double);  // + the loss and norm sums
  if (first_layer == 0) f.workspace += planned_encoder_scratch_bytes(batch, static_cast<int>(T));
  if (has_block) {
    f.recompute_workspace = CudaBlockLayout(B, T, C, shape.n_head, es).total;
    f.selective_workspace = CudaPointwiseLayout(B * T, C, es).total;
  }
  f.stash = cuda_stash_bytes(shape, first_layer, end_layer, B, Recompute::None, es);
  f.selective_stash = cuda_stash_bytes(shape, first_layer, end_layer, B, Recompute::Selective, es);
  f.full_stash = cuda_stash_bytes(shape, first_layer, end_layer, B, Recompute::Full, es);
  f.kept_gradients = kept_units * NC * es;
  f.message = round_up(NC * es, sizeof(float));  // whole 4-byte words
  return f;
}

}  // namespace pptrain
