#include "model/cuda_stage_model.h"

#if PPTRAIN_WITH_CUDA

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cuda/bf16_host.h"
#include "kernels/cuda/cuda_ops.h"
#include "model/stash_layout.h"

namespace pptrain {

namespace kc = kernels::cuda;
using kc::DType;

namespace {

// Index of each tensor in GPT2Shape::layer_params(layer), as in cpu_stage_model.cpp.
enum BlockParam { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB };
enum EmbeddingParam { EMB_WTE, EMB_WPE };
enum HeadParam { HEAD_LNFW, HEAD_LNFB, HEAD_WTE };

}  // namespace

struct CudaStash::HostIds {
  explicit HostIds(std::size_t n) : pinned(2 * n * sizeof(int)) {}
  int* ids() { return static_cast<int*>(pinned.data()); }  // [tokens (N) | targets (N)]
  kc::PinnedHostBuffer pinned;
  kc::StreamEvent uploaded;
};

namespace {

class DeviceWordBuffer final : public WordBuffer {
 public:
  DeviceWordBuffer(MemoryTracker& memory, std::size_t words)
      : buffer_(memory, MemCategory::Activations, words * sizeof(float)) {}
  float* data() override { return buffer_.as<float>(); }

 private:
  kc::DeviceBuffer buffer_;
};

}  // namespace

CudaStageModel::CudaStageModel(const GPT2Shape& shape, int first_layer, int end_layer,
                               int max_batch, std::uint64_t seed, ComputeDevice& device)
    : StageModel(shape, first_layer, end_layer, max_batch), device_(device), seed_(seed) {
  MemoryTracker& mem = device.memory();
  const kc::Stream s = device.stream();
  // Device layout: each table entry on a 256-byte boundary.
  for (const ParamEntry& e : table_.entries()) {
    device_offset_.push_back(device_words_);
    device_words_ += device_tensor_words(e.spec.numel());
  }
  // By name, as the CPU backend does: a stage holding both the embedding and the head has one
  // "wte" entry, which the head's layer_params lists again.
  const auto& entries = table_.entries();
  for (int layer = first_layer; layer < end_layer; ++layer) {
    std::vector<std::size_t> ids;
    for (const ParamSpec& spec : shape.layer_params(layer)) {
      const auto it = std::find_if(entries.begin(), entries.end(),
                                   [&](const ParamEntry& e) { return e.spec.name == spec.name; });
      ids.push_back(static_cast<std::size_t>(it - entries.begin()));
    }
    layer_entry_.push_back(std::move(ids));
  }
  const std::size_t bytes = device_words_ * sizeof(float);
  master_ = kc::DeviceBuffer(mem, MemCategory::Params, bytes);
  if (device.dtype() == DType::BF16) {
    working_ = kc::DeviceBuffer(mem, MemCategory::Params, device_words_ * 2);
  }
  grads_ = kc::DeviceBuffer(mem, MemCategory::Grads, bytes);
  adam_m_ = kc::DeviceBuffer(mem, MemCategory::Optimizer, bytes);
  adam_v_ = kc::DeviceBuffer(mem, MemCategory::Optimizer, bytes);
  for (kc::DeviceBuffer* b : {&master_, &grads_, &adam_m_, &adam_v_}) b->zero(s);

  const std::size_t T = shape.max_seq_len, C = shape.channels, N = max_batch * T;
  const std::size_t es = element_bytes();
  scratch_ = kc::DeviceBuffer(mem, MemCategory::Workspace, kBlockScratchUnits * N * C * es);
  grad_a_ = kc::DeviceBuffer(mem, MemCategory::Workspace, N * C * es);
  grad_b_ = kc::DeviceBuffer(mem, MemCategory::Workspace, N * C * es);
  if (has_head()) logits_ = kc::DeviceBuffer(mem, MemCategory::Workspace, N * shape.padded_vocab_size * es);
  if (has_embedding()) {
    const std::size_t n = kc::encoder_backward_scratch_bytes(max_batch, static_cast<int>(T),
                                                             shape.padded_vocab_size);
    encoder_scratch_ = kc::DeviceBuffer(mem, MemCategory::Workspace, n);
  }
  reduce_scratch_ = kc::DeviceBuffer(mem, MemCategory::Workspace, kc::sum_of_squares_scratch_bytes());
  sums_ = kc::DeviceBuffer(mem, MemCategory::Workspace, 3 * sizeof(double));
  sums_.zero(s);
  bool has_block = false;
  for (int layer = first_layer; layer < end_layer; ++layer) {
    has_block = has_block || shape.layer_kind(layer) == LayerKind::LayerKindBlock;
  }
  if (has_block) {  // timed on scratch_ before anything lives there (14 NC >= 8 NC + lse)
    attention_tiling_ = device.attention_tiling(max_batch, static_cast<int>(T),
                                                static_cast<int>(C), shape.n_head, scratch_.data(),
                                                scratch_.bytes());
  }

  // The same initial values as the CPU backend (a pure function of seed and name).
  std::vector<float> host(num_params());
  for (const ParamEntry& e : table_.entries()) init_parameter(host.data() + e.offset, e.spec, seed);
  write_params(host.data());
}

CudaStageModel::~CudaStageModel() = default;

std::size_t CudaStageModel::element_bytes() const { return kc::dtype_size(device_.dtype()); }

const void* CudaStageModel::weight(int layer, int index) const {
  const std::size_t off = device_offset_[layer_entry_[layer - first_layer_][index]];
  if (device_.dtype() == DType::BF16) return working_.as<std::uint16_t>() + off;
  return master_.as<float>() + off;
}

float* CudaStageModel::grad_of(int layer, int index) {
  return grads_.as<float>() + device_offset_[layer_entry_[layer - first_layer_][index]];
}

std::size_t CudaStageModel::grad_word_offset(std::size_t entry) const { return device_offset_.at(entry); }

float* CudaStageModel::grad(const std::string& name) {
  const auto& entries = table_.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].spec.name == name) return grads_.as<float>() + device_offset_[i];
  }
  PPT_THROW("stage [{}, {}) has no parameter '{}'", first_layer_, end_layer_, name);
}

std::unique_ptr<Stash> CudaStageModel::make_stash(int batch, Recompute recompute) {
  PPT_CHECK(batch >= 1 && batch <= max_batch_, "batch {} outside [1, {}]", batch, max_batch_);
  auto stash = std::make_unique<CudaStash>();
  stash->B = batch;
  stash->recompute = recompute;
  const std::size_t T = shape_.max_seq_len, C = shape_.channels, N = batch * T, es = element_bytes();
  const bool full = recompute == Recompute::Full, selective = recompute == Recompute::Selective;
  ByteCarver c;
  if (has_embedding()) {
    stash->tokens = c.take(N * sizeof(int));
  } else {
    stash->input = c.take(N * C * es);
  }
  if (has_head()) stash->targets = c.take(N * sizeof(int));
  if (has_embedding() || has_head()) stash->host_ids = std::make_shared<CudaStash::HostIds>(N);
  for (int layer = first_layer_; layer < end_layer_; ++layer) {
    std::size_t bytes = 0;
    switch (shape_.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding: bytes = N * C * es; break;
      case LayerKind::LayerKindBlock:
        bytes = full ? N * C * es : CudaBlockLayout(batch, T, C, shape_.n_head, es, !selective).total;
        if (full && recomputed_.bytes() == 0) {
          recomputed_ = kc::DeviceBuffer(device_.memory(), MemCategory::Workspace,
                                         CudaBlockLayout(max_batch_, T, C, shape_.n_head, es).total);
        }
        if (selective && pointwise_.bytes() == 0) {
          pointwise_ = kc::DeviceBuffer(device_.memory(), MemCategory::Workspace,
                                        CudaPointwiseLayout(max_batch_ * T, C, es).total);
        }
        break;
      case LayerKind::LayerKindHead: bytes = CudaHeadLayout(N, C, es).total; break;
    }
    stash->layer.push_back(c.take(bytes));
  }
  stash->data = kc::DeviceBuffer(device_.memory(), MemCategory::Activations, c.used);
  return stash;
}

std::size_t CudaStageModel::activation_words(int batch) const {
  const std::size_t bytes =
      static_cast<std::size_t>(batch) * shape_.max_seq_len * shape_.channels * element_bytes();
  return (bytes + sizeof(float) - 1) / sizeof(float);
}

std::unique_ptr<WordBuffer> CudaStageModel::make_message_buffer(std::size_t words) {
  return std::make_unique<DeviceWordBuffer>(device_.memory(), words);
}

void CudaStageModel::forward(Stash& base, const int* tokens, const float* input, const int* targets,
                             float dloss_scale, bool need_grad) {
  CudaStash& stash = static_cast<CudaStash&>(base);
  const int B = stash.B, T = shape_.max_seq_len, C = shape_.channels;
  const std::size_t N = static_cast<std::size_t>(B) * T, es = element_bytes();
  const DType dt = device_.dtype();
  const kc::Stream s = device_.stream();
  const void* x = nullptr;  // the current layer's input (B,T,C)
  upload_ids(stash, has_embedding() ? tokens : nullptr, has_head() ? targets : nullptr);
  if (has_embedding()) {
    PPT_CHECK(tokens != nullptr, "the first stage needs input tokens");
  } else {
    PPT_CHECK(input != nullptr, "stage starting at layer {} needs input activations", first_layer_);
    kc::copy_async(stash.at(stash.input), input, N * C * es, s);
    x = stash.at(stash.input);
  }
  for (int layer = first_layer_; layer < end_layer_; ++layer) {
    char* acts = stash.at(stash.layer[layer - first_layer_]);
    switch (shape_.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding:
        kc::encoder_forward(acts, reinterpret_cast<const int*>(stash.at(stash.tokens)),
                            weight(layer, EMB_WTE), weight(layer, EMB_WPE), B, T, C, dt, s);
        x = acts;
        break;
      case LayerKind::LayerKindBlock: {
        const BlockActs a = stash_activations(stash, layer);
        forward_block(B, layer, x, a, stash.recompute == Recompute::Selective);
        if (stash.recompute == Recompute::Full) kc::copy_async(acts, a.out, N * C * es, s);
        x = block_output(stash, layer);
        break;
      }
      case LayerKind::LayerKindHead: {
        const CudaHeadLayout h(N, C, es);
        const int n = static_cast<int>(N), Vp = shape_.padded_vocab_size;
        float* losses = reinterpret_cast<float*>(acts + h.losses);
        char* logits = logits_.as<char>();
        kc::layernorm_forward(acts + h.lnf, reinterpret_cast<float*>(acts + h.lnf_mean),
                              reinterpret_cast<float*>(acts + h.lnf_rstd), x,
                              weight(layer, HEAD_LNFW), weight(layer, HEAD_LNFB), n, C, dt, s);
        kc::matmul_forward(device_.blas(), logits, acts + h.lnf, weight(layer, HEAD_WTE), nullptr, n,
                           C, Vp, dt, s);
        logits_owner_ = &stash;
        stash.head_grads = false;
        if (targets != nullptr) {
          kc::classifier_forward_backward(logits, losses,
                                          reinterpret_cast<const int*>(stash.at(stash.targets)), n,
                                          shape_.vocab_size, Vp, dloss_scale, need_grad, dt, s);
          kc::add_scaled_sum(sums_.as<double>(), losses, N, 1.0 / static_cast<double>(N),
                             reduce_scratch_.data(), reduce_scratch_.bytes(), s);
          if (need_grad) {
            // The head's backward through its matmul, now, while the dlogits exist (as in
            // CpuStageModel::forward): dlnf for backward, and the LM head's weight gradient.
            kc::matmul_backward(device_.blas(), acts + h.dlnf, nullptr, nullptr, logits, acts + h.lnf,
                                weight(layer, HEAD_WTE), n, C, Vp, dt, s, /*accumulate_dinp=*/false);
            kc::matmul_backward(device_.blas(), nullptr, grad_of(layer, HEAD_WTE), nullptr, logits,
                                acts + h.lnf, weight(layer, HEAD_WTE), n, C, Vp, dt, s);
            stash.head_grads = true;
          }
        }
        break;
      }
    }
  }
}

void CudaStageModel::upload_ids(CudaStash& stash, const int* tokens, const int* targets) {
  if (tokens == nullptr && targets == nullptr) return;
  const std::size_t N = static_cast<std::size_t>(stash.B) * shape_.max_seq_len;
  CudaStash::HostIds& h = *stash.host_ids;
  // The stash's previous upload must have left the pinned buffer before it is rewritten (the
  // host may run ahead of the GPU by a whole step); normally long done, so no wait.
  h.uploaded.wait_host();
  const kc::Stream s = device_.stream();
  if (tokens != nullptr) {
    std::memcpy(h.ids(), tokens, N * sizeof(int));
    kc::copy_async(stash.at(stash.tokens), h.ids(), N * sizeof(int), s);
  }
  if (targets != nullptr) {
    std::memcpy(h.ids() + N, targets, N * sizeof(int));
    kc::copy_async(stash.at(stash.targets), h.ids() + N, N * sizeof(int), s);
  }
  h.uploaded.record(s);
}

void CudaStageModel::forward_block(int B, int layer, const void* x, const BlockActs& a,
                                   bool unfused_gelu) {
  const int T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const int N = B * T;
  const std::size_t es = element_bytes(), NC = static_cast<std::size_t>(N) * C;
  const DType dt = device_.dtype();
  const kc::Stream s = device_.stream();
  kc::CublasLtContext& blas = device_.blas();
  auto W = [&](int i) { return weight(layer, i); };
  // The two projections are not needed by the backward: they live in scratch.
  char* attproj = scratch_.as<char>();
  char* fcproj = attproj + NC * es;
  kc::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, W(LN1W), W(LN1B), N, C, dt, s);
  kc::matmul_forward(blas, a.qkv, a.ln1, W(QKVW), W(QKVB), N, C, 3 * C, dt, s);
  kc::attention_forward(a.atty, a.lse, a.qkv, B, T, C, NH, dt, s,
                        attention_tiling_);
  kc::matmul_forward(blas, attproj, a.atty, W(ATTPROJW), W(ATTPROJB), N, C, C, dt, s);
  kc::residual_layernorm_forward(a.res2, a.ln2, a.ln2_mean, a.ln2_rstd, x, attproj,
                                 W(LN2W), W(LN2B), N, C, dt, s);
  if (unfused_gelu) {
    kc::matmul_forward(blas, a.fch, a.ln2, W(FCW), W(FCB), N, C, 4 * C, dt, s);
    kc::gelu_forward(a.fch_gelu, a.fch, static_cast<std::size_t>(N) * 4 * C, dt, s);
  } else {
    kc::matmul_forward(blas, a.fch_gelu, a.ln2, W(FCW), W(FCB), N, C, 4 * C, dt, s, a.fch);
  }
  kc::matmul_forward(blas, fcproj, a.fch_gelu, W(FCPROJW), W(FCPROJB), N, 4 * C, C, dt, s);
  kc::add_vectors(a.out, a.res2, fcproj, NC, dt, s);
}

const void* CudaStageModel::layer_input(const CudaStash& stash, int layer) const {
  if (layer == first_layer_) return stash.at(stash.input);
  switch (shape_.layer_kind(layer - 1)) {
    case LayerKind::LayerKindEmbedding: return stash.at(stash.layer[layer - 1 - first_layer_]);
    case LayerKind::LayerKindBlock: return block_output(stash, layer - 1);
    case LayerKind::LayerKindHead: break;
  }
  PPT_THROW("layer {} follows the head", layer);
}

const void* CudaStageModel::block_output(const CudaStash& stash, int layer) const {
  const char* a = stash.at(stash.layer[layer - first_layer_]);
  if (stash.recompute == Recompute::Full) return a;
  const bool keeps_pointwise = stash.recompute != Recompute::Selective;
  return a + CudaBlockLayout(stash.B, shape_.max_seq_len, shape_.channels, shape_.n_head,
                             element_bytes(), keeps_pointwise).out;
}

CudaStageModel::BlockActs CudaStageModel::stash_activations(CudaStash& stash, int layer) {
  const std::size_t B = stash.B, T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const std::size_t es = element_bytes();
  const CudaPointwiseLayout pointwise(B * T, C, es);
  char* none = nullptr;
  switch (stash.recompute) {
    case Recompute::None:
      return block_activations_at(stash.at(stash.layer[layer - first_layer_]),
                                  CudaBlockLayout(B, T, C, NH, es), none, pointwise);
    case Recompute::Selective:
      return block_activations_at(stash.at(stash.layer[layer - first_layer_]),
                                  CudaBlockLayout(B, T, C, NH, es, false), pointwise_.as<char>(), pointwise);
    case Recompute::Full: break;
  }
  return block_activations_at(recomputed_.as<char>(), CudaBlockLayout(B, T, C, NH, es), none, pointwise);
}

// Full recomputing writes the scratch's first two units (the projections), which no
// backward reads across this call: the layer's gradients are written after it.
CudaStageModel::BlockActs CudaStageModel::block_activations(CudaStash& stash, int layer,
                                                            bool for_weight_grads) {
  const BlockActs a = stash_activations(stash, layer);
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const DType dt = device_.dtype();
  const kc::Stream s = device_.stream();
  if (stash.recompute == Recompute::Full) {
    forward_block(stash.B, layer, layer_input(stash, layer), a, false);
  } else if (stash.recompute == Recompute::Selective && for_weight_grads) {
    // As in CpuStageModel::block_activations, with forward_block's unfused GELU kernel.
    kc::layernorm_forward(a.ln1, a.remade_mean, a.remade_rstd, layer_input(stash, layer),
                          weight(layer, LN1W), weight(layer, LN1B), N, C, dt, s);
    kc::layernorm_forward(a.ln2, a.remade_mean, a.remade_rstd, a.res2, weight(layer, LN2W),
                          weight(layer, LN2B), N, C, dt, s);
    kc::gelu_forward(a.fch_gelu, a.fch, static_cast<std::size_t>(N) * 4 * C, dt, s);
  }
  return a;
}

void CudaStageModel::run_weight_grads(Stash& base, const LayerGradsDone& done) {
  CudaStash& stash = static_cast<CudaStash&>(base);
  // Top down, as in run_backward: each parameter gets the same sums in the same order.
  for (int layer = end_layer_ - 1; layer >= first_layer_; --layer) {
    const LayerGradients g = layer_gradients(stash, layer, true);
    switch (shape_.layer_kind(layer)) {
      case LayerKind::LayerKindHead: head_weight_grads(stash, layer, g); break;
      case LayerKind::LayerKindBlock: {
        const BlockActs acts = block_activations(stash, layer, true);
        block_weight_grads(stash.B, layer, layer_input(stash, layer), acts, g);
        break;
      }
      case LayerKind::LayerKindEmbedding: embedding_weight_grads(stash, g); break;
    }
    if (done) done(layer);
  }
  // Stream order makes the reuse safe: the next backward_input writes them after these reads.
  kept_pool_.push_back(std::move(stash.kept_gradients));
  stash.kept_gradients.clear();
}

// The gradient flowing down the stage ping-pongs between grad_a_ and grad_b_. A whole
// backward makes each layer's parameter gradients right after its input gradient, from
// scratch; a split one keeps what they need in the stash for backward_weight.
void CudaStageModel::run_backward(Stash& base, const float* dout, bool split, const LayerGradsDone& done) {
  CudaStash& stash = static_cast<CudaStash&>(base);
  const std::size_t NC = static_cast<std::size_t>(stash.B) * shape_.max_seq_len * shape_.channels;
  const std::size_t bytes = NC * element_bytes();
  const kc::Stream s = device_.stream();
  void* cur = grad_a_.data();
  void* next = grad_b_.data();
  int layer = end_layer_ - 1;
  if (has_head()) {
    PPT_CHECK(stash.head_grads, "backward on the last stage needs a forward with targets and need_grad");
    const LayerGradients g = layer_gradients(stash, layer, split);
    head_input_grad(stash, layer, g, cur);
    if (!split) head_weight_grads(stash, layer, g);
    if (!split && done) done(layer);
    --layer;
  } else {
    PPT_CHECK(dout != nullptr, "stage ending at layer {} needs the output gradient", end_layer_ - 1);
    kc::copy_async(cur, dout, bytes, s);
  }
  for (; layer >= first_layer_; --layer) {
    LayerGradients g = layer_gradients(stash, layer, split);
    if (split) {
      kc::copy_async(g.dout, cur, bytes, s);
    } else {
      g.dout = static_cast<char*>(cur);
    }
    if (shape_.layer_kind(layer) == LayerKind::LayerKindEmbedding) {
      if (!split) embedding_weight_grads(stash, g);
      if (!split && done) done(layer);
      break;
    }
    const void* x = layer_input(stash, layer);
    const BlockActs acts = block_activations(stash, layer, !split);
    block_input_grad(stash.B, layer, x, acts, g, next);
    if (!split) block_weight_grads(stash.B, layer, x, acts, g);
    if (!split && done) done(layer);
    std::swap(cur, next);
  }
  input_grad_ = has_embedding() ? nullptr : cur;
}

CudaStageModel::LayerGradients CudaStageModel::layer_gradients(CudaStash& stash, int layer, bool split) {
  const std::size_t NC = static_cast<std::size_t>(stash.B) * shape_.max_seq_len * shape_.channels;
  const std::size_t unit = NC * element_bytes();  // bytes of one (N,C) tensor
  const LayerKind kind = shape_.layer_kind(layer);
  char* base = scratch_.as<char>();
  if (split) {
    if (stash.kept_gradients.empty()) take_kept_gradients(kept_pool_, stash.kept_gradients, end_layer_ - first_layer_);
    kc::DeviceBuffer& kept = stash.kept_gradients[layer - first_layer_];
    const std::size_t bytes = kept_gradient_units(kind) * unit;
    if (kept.bytes() != bytes) kept = kc::DeviceBuffer(device_.memory(), MemCategory::Activations, bytes);
    base = kept.as<char>();
  }
  LayerGradients g = carve_layer_gradients(base, unit, kind, split);
  if (kind == LayerKind::LayerKindHead) {
    g.dlnf = stash.at(stash.layer[layer - first_layer_]) +
             CudaHeadLayout(static_cast<std::size_t>(stash.B) * shape_.max_seq_len, shape_.channels, element_bytes()).dlnf;
  }
  return g;
}

// The rest of the head's backward: its forward made dlnf and the LM head's weight gradient.
void CudaStageModel::head_input_grad(CudaStash& stash, int layer, const LayerGradients& g, void* dinp) {
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const CudaHeadLayout h(N, C, element_bytes());
  const char* a = stash.at(stash.layer[layer - first_layer_]);
  const kc::Stream s = device_.stream();
  kc::zero_async(dinp, static_cast<std::size_t>(N) * C * element_bytes(), s);
  kc::layernorm_backward(dinp, nullptr, nullptr, g.dlnf, layer_input(stash, layer),
                         weight(layer, HEAD_LNFW), reinterpret_cast<const float*>(a + h.lnf_mean),
                         reinterpret_cast<const float*>(a + h.lnf_rstd), N, C, device_.dtype(), s);
}

void CudaStageModel::head_weight_grads(CudaStash& stash, int layer, const LayerGradients& g) {
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const CudaHeadLayout h(N, C, element_bytes());
  const char* a = stash.at(stash.layer[layer - first_layer_]);
  const kc::Stream s = device_.stream();
  kc::layernorm_backward(nullptr, grad_of(layer, HEAD_LNFW), grad_of(layer, HEAD_LNFB), g.dlnf,
                         layer_input(stash, layer), weight(layer, HEAD_LNFW),
                         reinterpret_cast<const float*>(a + h.lnf_mean),
                         reinterpret_cast<const float*>(a + h.lnf_rstd), N, C, device_.dtype(), s);
}

void CudaStageModel::embedding_weight_grads(CudaStash& stash, const LayerGradients& g) {
  kc::encoder_backward(grad_of(first_layer_, EMB_WTE), grad_of(first_layer_, EMB_WPE), g.dout,
                       reinterpret_cast<const int*>(stash.at(stash.tokens)), stash.B,
                       shape_.max_seq_len, shape_.channels, shape_.padded_vocab_size, device_.dtype(),
                       encoder_scratch_.data(), encoder_scratch_.bytes(), device_.stream());
}

void CudaStageModel::block_input_grad(int B, int layer, const void* x, const BlockActs& a,
                                      const LayerGradients& g, void* dinp) {
  const int T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const int N = B * T;
  const std::size_t es = element_bytes(), NC = static_cast<std::size_t>(N) * C;
  const DType dt = device_.dtype();
  const kc::Stream s = device_.stream();
  kc::CublasLtContext& blas = device_.blas();
  auto W = [&](int i) { return weight(layer, i); };
  char* dfch_gelu = scratch_.as<char>() + kScratchDfchGelu * NC * es;  // (N,4C), unfused GELU only
  char* datty = scratch_.as<char>() + kScratchDatty * NC * es;          // (N,C)
  // out = res2 + fcproj(gelu(fc(ln2(res2)))): d(res2) gets dout directly and via the MLP.
  // Fresh gradients that a matmul, the GELU-fused matmul or attention make are written
  // (accumulate false), not zeroed first and added to. Parameter gradients: block_weight_grads.
  constexpr bool kAccumulate = false;
  // d(fch) in one pass when cuBLASLt fuses GELU's derivative; dfch_gelu is the unfused scratch.
  kc::matmul_backward_gelu(blas, g.dfch, dfch_gelu, nullptr, nullptr, g.dout, a.fch_gelu,
                           a.fch, W(FCPROJW), N, 4 * C, C, dt, s);
  kc::matmul_backward(blas, g.dln2, nullptr, nullptr, g.dfch, a.ln2, W(FCW), N, C, 4 * C, dt, s,
                      kAccumulate);
  kc::layernorm_backward(g.dres2, nullptr, nullptr, g.dln2, a.res2, W(LN2W), a.ln2_mean,
                         a.ln2_rstd, N, C, dt, s, /*dinp_base=*/g.dout);
  // res2 = x + attproj(attention(qkv(ln1(x)))): d(x) gets d(res2) directly and via attention.
  kc::matmul_backward(blas, datty, nullptr, nullptr, g.dres2, a.atty, W(ATTPROJW), N, C, C, dt,
                      s, kAccumulate);
  kc::attention_backward(g.dqkv, datty, a.qkv, a.atty, a.lse, B, T, C, NH, dt, s,
                         kAccumulate, attention_tiling_);
  kc::matmul_backward(blas, g.dln1, nullptr, nullptr, g.dqkv, a.ln1, W(QKVW), N, C, 3 * C, dt,
                      s, kAccumulate);
  kc::layernorm_backward(dinp, nullptr, nullptr, g.dln1, x, W(LN1W), a.ln1_mean,
                         a.ln1_rstd, N, C, dt, s, /*dinp_base=*/g.dres2);
}

void CudaStageModel::block_weight_grads(int B, int layer, const void* x, const BlockActs& a,
                                        const LayerGradients& g) {
  const int T = shape_.max_seq_len, C = shape_.channels;
  const int N = B * T;
  const DType dt = device_.dtype();
  const kc::Stream s = device_.stream();
  kc::CublasLtContext& blas = device_.blas();
  auto W = [&](int i) { return weight(layer, i); };
  auto G = [&](int i) { return grad_of(layer, i); };
  kc::matmul_backward(blas, nullptr, G(FCPROJW), G(FCPROJB), g.dout, a.fch_gelu, W(FCPROJW), N,
                      4 * C, C, dt, s);
  kc::matmul_backward(blas, nullptr, G(FCW), G(FCB), g.dfch, a.ln2, W(FCW), N, C, 4 * C, dt, s);
  kc::layernorm_backward(nullptr, G(LN2W), G(LN2B), g.dln2, a.res2, W(LN2W), a.ln2_mean,
                         a.ln2_rstd, N, C, dt, s);
  kc::matmul_backward(blas, nullptr, G(ATTPROJW), G(ATTPROJB), g.dres2, a.atty, W(ATTPROJW), N,
                      C, C, dt, s);
  kc::matmul_backward(blas, nullptr, G(QKVW), G(QKVB), g.dqkv, a.ln1, W(QKVW), N, C, 3 * C, dt, s);
  kc::layernorm_backward(nullptr, G(LN1W), G(LN1B), g.dln1, x, W(LN1W), a.ln1_mean,
                         a.ln1_rstd, N, C, dt, s);
}

const float* CudaStageModel::output(const Stash& base) const {
  const CudaStash& stash = static_cast<const CudaStash&>(base);
  PPT_CHECK(!has_head(), "the last stage has no activation output");
  const int last = end_layer_ - 1;
  if (shape_.layer_kind(last) == LayerKind::LayerKindBlock) {
    return static_cast<const float*>(block_output(stash, last));
  }
  return reinterpret_cast<const float*>(stash.at(stash.layer[last - first_layer_]));
}

void CudaStageModel::copy_logits_row(const Stash& base, int row, std::vector<float>& out) const {
  const CudaStash& stash = static_cast<const CudaStash&>(base);
  PPT_CHECK(has_head() && logits_owner_ == &stash && !stash.head_grads,
            "logits are kept only for the last stage's latest forward, and only one without gradient");
  PPT_CHECK(row >= 0 && row < stash.B * shape_.max_seq_len, "logits row {} outside the batch", row);
  const std::size_t Vp = shape_.padded_vocab_size, es = element_bytes();
  const char* src = logits_.as<char>() + row * Vp * es;
  out.resize(Vp);
  if (device_.dtype() == DType::F32) {
    kc::copy_async(out.data(), src, Vp * sizeof(float), device_.stream());
    device_.synchronize();
    return;
  }
  std::vector<std::uint16_t> bits(Vp);
  kc::copy_async(bits.data(), src, Vp * 2, device_.stream());
  device_.synchronize();
  std::transform(bits.begin(), bits.end(), out.begin(), kc::bf16_bits_to_float);
}

void CudaStageModel::copy_input_grad(float* dst, int batch) const {
  PPT_CHECK(input_grad_ != nullptr, "no input gradient: first stage, or no backward yet");
  const std::size_t bytes =
      static_cast<std::size_t>(batch) * shape_.max_seq_len * shape_.channels * element_bytes();
  kc::copy_async(dst, input_grad_, bytes, device_.stream());
}

double CudaStageModel::take_loss_sum() {
  double sum = 0.0;
  kc::copy_async(&sum, sums_.data(), sizeof sum, device_.stream());
  device_.synchronize();
  kc::zero_async(sums_.data(), sizeof(double), device_.stream());
  return sum;
}

void CudaStageModel::zero_grads() { grads_.zero(device_.stream()); }

double CudaStageModel::grad_sum_of_squares(bool without_tied_wte) {
  const kc::Stream s = device_.stream();
  double* sq = sums_.as<double>() + 1;
  kc::zero_async(sq, 2 * sizeof(double), s);
  kc::sum_of_squares(sq, grads_.as<float>(), device_words_, reduce_scratch_.data(), reduce_scratch_.bytes(), s);
  if (without_tied_wte) {
    kc::sum_of_squares(sq + 1, grad("wte"), table_.find("wte").spec.numel(), reduce_scratch_.data(),
                       reduce_scratch_.bytes(), s);
  }
  double host[2] = {0.0, 0.0};
  kc::copy_async(host, sq, sizeof host, s);
  device_.synchronize();
  return host[0] - host[1];
}

void CudaStageModel::sum_tied_wte_grads(StageModel& other) {
  auto& peer = dynamic_cast<CudaStageModel&>(other);
  float* a = grad("wte");
  float* b = peer.grad("wte");
  const std::size_t n = table_.find("wte").spec.numel();
  kc::add_vectors(a, a, b, n, DType::F32, device_.stream());
  kc::copy_async(b, a, n * sizeof(float), device_.stream());
}

void CudaStageModel::optimizer_step(const TrainingConfig& training, float lr, int t,
                                    float grad_scale) {
  const bool bf16 = device_.dtype() == DType::BF16;
  const auto& entries = table_.entries();
  std::vector<kc::AdamwTensor> tensors(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const ParamSpec& spec = entries[i].spec;
    tensors[i].offset = device_offset_[i];
    tensors[i].n = spec.numel();
    tensors[i].weight_decay = spec.decay ? static_cast<float>(training.weight_decay) : 0.0f;
    // A fresh stream of rounding bits per tensor and step, the same on every layout.
    if (bf16) tensors[i].seed = stream_key(seed_, spec.name, static_cast<std::uint64_t>(t));
  }
  const kc::AdamwBuffers buffers{master_.as<float>(), bf16 ? working_.as<std::uint16_t>() : nullptr,
                                 grads_.as<float>(), adam_m_.as<float>(), adam_v_.as<float>()};
  kc::adamw_update(buffers, tensors, adamw_step(training, lr, t, grad_scale), device_.stream());
}

void CudaStageModel::copy_table_to_device(float* device, const float* host) {
  const auto& entries = table_.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    kc::copy_async(device + device_offset_[i], host + entries[i].offset,
                   entries[i].spec.numel() * sizeof(float), device_.stream());
  }
  device_.synchronize();
}

void CudaStageModel::copy_device_to_table(float* host, const float* device) const {
  const auto& entries = table_.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    kc::copy_async(host + entries[i].offset, device + device_offset_[i],
                   entries[i].spec.numel() * sizeof(float), device_.stream());
  }
  device_.synchronize();
}

void CudaStageModel::read_params(float* dst) const { copy_device_to_table(dst, master_.as<float>()); }

void CudaStageModel::write_params(const float* src) {
  copy_table_to_device(master_.as<float>(), src);
  // The bf16 working copy: round to nearest (stochastic rounding is for updates only).
  if (device_.dtype() == DType::BF16) {
    kc::cast_f32_to_bf16(working_.as<std::uint16_t>(), master_.as<float>(), device_words_, device_.stream());
  }
}

void CudaStageModel::read_moments(float* m, float* v) const {
  copy_device_to_table(m, adam_m_.as<float>());
  copy_device_to_table(v, adam_v_.as<float>());
}

void CudaStageModel::write_moments(const float* m, const float* v) {
  copy_table_to_device(adam_m_.as<float>(), m);
  copy_table_to_device(adam_v_.as<float>(), v);
}

}  // namespace pptrain

#endif  // PPTRAIN_WITH_CUDA
