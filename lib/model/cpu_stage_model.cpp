#include "model/cpu_stage_model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/classifier.h"
#include "kernels/adamw.h"
#include "kernels/encoder.h"
#include "kernels/gelu.h"
#include "kernels/grad_norm.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "model/stash_layout.h"

namespace pptrain {

namespace k = kernels::cpu;

namespace {

// Index of each tensor in GPT2Shape::layer_params(layer) for a block.
enum BlockParam { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB };
enum EmbeddingParam { EMB_WTE, EMB_WPE };
enum HeadParam { HEAD_LNFW, HEAD_LNFB, HEAD_WTE };

void add_into(float* out, const float* a, const float* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void zero(float* p, std::size_t n) { std::memset(p, 0, n * sizeof(float)); }

}  // namespace

CpuStageModel::CpuStageModel(const GPT2Shape& shape, int first_layer, int end_layer, int max_batch,
                             std::uint64_t seed, MemoryTracker& memory)
    : StageModel(shape, first_layer, end_layer, max_batch), memory_(memory) {
  params_ = FloatBuffer(memory, MemCategory::Params, table_.total_floats());
  grads_ = FloatBuffer(memory, MemCategory::Grads, table_.total_floats());
  adam_m_ = FloatBuffer(memory, MemCategory::Optimizer, table_.total_floats());
  adam_v_ = FloatBuffer(memory, MemCategory::Optimizer, table_.total_floats());
  for (const ParamEntry& e : table_.entries()) {
    init_parameter(params_.data() + e.offset, e.spec, seed);
  }
  for (int layer = first_layer; layer < end_layer; ++layer) {
    LayerTensors t;
    for (const ParamSpec& spec : shape.layer_params(layer)) {
      t.p.push_back(param(spec.name));
      t.g.push_back(grad(spec.name));
    }
    layers_.push_back(std::move(t));
  }
  const std::size_t NC = static_cast<std::size_t>(max_batch) * shape.max_seq_len * shape.channels;
  grad_a_ = FloatBuffer(memory, MemCategory::Workspace, NC);
  grad_b_ = FloatBuffer(memory, MemCategory::Workspace, NC);
  scratch_ = FloatBuffer(memory, MemCategory::Workspace, kBlockScratchUnits * NC);
  if (has_head()) logits_ = FloatBuffer(memory, MemCategory::Workspace, NC / shape.channels * shape.padded_vocab_size);
}

CpuStageModel::~CpuStageModel() = default;

std::unique_ptr<Stash> CpuStageModel::make_stash(int batch, Recompute recompute) {
  PPT_CHECK(batch >= 1 && batch <= max_batch_, "batch {} outside [1, {}]", batch, max_batch_);
  auto stash = std::make_unique<CpuStash>();
  stash->B = batch;
  stash->recompute = recompute;
  const std::size_t T = shape_.max_seq_len, C = shape_.channels, N = batch * T;
  const bool full = recompute == Recompute::Full, selective = recompute == Recompute::Selective;
  if (has_embedding()) {
    stash->tokens.resize(N);
  } else {
    stash->input = FloatBuffer(memory_, MemCategory::Activations, N * C);
  }
  for (int layer = first_layer_; layer < end_layer_; ++layer) {
    std::size_t floats = 0;
    switch (shape_.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding: floats = N * C; break;
      case LayerKind::LayerKindBlock:
        floats = full ? N * C : CpuBlockLayout(batch, T, C, shape_.n_head, !selective).total;
        if (full && recomputed_.size() == 0) {
          recomputed_ = FloatBuffer(memory_, MemCategory::Workspace,
                                    CpuBlockLayout(max_batch_, T, C, shape_.n_head).total);
        }
        if (selective && pointwise_.size() == 0) {
          pointwise_ = FloatBuffer(memory_, MemCategory::Workspace,
                                   CpuPointwiseLayout(max_batch_ * T, C).total);
        }
        break;
      case LayerKind::LayerKindHead: floats = CpuHeadLayout(N, C).total; break;
    }
    stash->layer.emplace_back(memory_, MemCategory::Activations, floats);
  }
  return stash;
}

void CpuStageModel::forward(Stash& base, const int* tokens, const float* input, const int* targets,
                            float dloss_scale, bool need_grad) {
  CpuStash& stash = static_cast<CpuStash&>(base);
  const int B = stash.B, T = shape_.max_seq_len, C = shape_.channels;
  const std::size_t N = static_cast<std::size_t>(B) * T;
  const float* x = nullptr;  // the current layer's input (B,T,C)
  if (has_embedding()) {
    PPT_CHECK(tokens != nullptr, "the first stage needs input tokens");
    std::copy(tokens, tokens + N, stash.tokens.begin());
  } else {
    PPT_CHECK(input != nullptr, "stage starting at layer {} needs input activations", first_layer_);
    std::copy(input, input + N * C, stash.input.data());
    x = stash.input.data();
  }
  for (int layer = first_layer_; layer < end_layer_; ++layer) {
    float* acts = stash.layer[layer - first_layer_].data();
    const LayerTensors& t = layers_[layer - first_layer_];
    switch (shape_.layer_kind(layer)) {
      case LayerKind::LayerKindEmbedding:
        k::encoder_forward(acts, stash.tokens.data(), t.p[EMB_WTE], t.p[EMB_WPE], B, T, C);
        x = acts;
        break;
      case LayerKind::LayerKindBlock: {
        const BlockActs a = stash_activations(stash, layer);
        forward_block(B, layer, x, a);
        if (stash.recompute == Recompute::Full) std::copy(a.out, a.out + N * C, acts);
        x = block_output(stash, layer);
        break;
      }
      case LayerKind::LayerKindHead: {
        const CpuHeadLayout h(N, C);
        const int Vp = shape_.padded_vocab_size, n = static_cast<int>(N);
        float* logits = logits_.data();
        k::layernorm_forward(acts + h.lnf, acts + h.lnf_mean, acts + h.lnf_rstd, x,
                             t.p[HEAD_LNFW], t.p[HEAD_LNFB], n, C);
        k::matmul_forward(logits, acts + h.lnf, t.p[HEAD_WTE], static_cast<const float*>(nullptr), n, C, Vp);
        logits_owner_ = &stash;
        stash.head_grads = false;
        if (targets != nullptr) {
          k::classifier_forward_backward(logits, acts + h.losses, targets, n, shape_.vocab_size, Vp,
                                         dloss_scale, need_grad);
          double sum = 0.0;
          for (std::size_t i = 0; i < N; ++i) sum += acts[h.losses + i];
          loss_sum_ += sum / static_cast<double>(N);
          if (need_grad) {
            // The head's backward through its matmul, now, while the dlogits exist: dlnf for
            // backward and the LM head's weight gradient (accumulated in micro-batch order,
            // as every schedule runs the forwards and backwards of a stage).
            zero(acts + h.dlnf, N * C);
            k::matmul_backward(acts + h.dlnf, static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                               logits, acts + h.lnf, t.p[HEAD_WTE], n, C, Vp);
            k::matmul_backward(static_cast<float*>(nullptr), t.g[HEAD_WTE], static_cast<float*>(nullptr),
                               logits, acts + h.lnf, t.p[HEAD_WTE], n, C, Vp);
            stash.head_grads = true;
          }
        }
        break;
      }
    }
  }
}

double CpuStageModel::take_loss_sum() {
  const double sum = loss_sum_;
  loss_sum_ = 0.0;
  return sum;
}

void CpuStageModel::forward_block(int B, int layer, const float* x, const BlockActs& a) {
  const int T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const int N = B * T;
  const std::vector<float*>& p = layers_[layer - first_layer_].p;
  // The two projections are not needed by the backward: they live in scratch.
  float* attproj = scratch_.data();
  float* fcproj = scratch_.data() + static_cast<std::size_t>(N) * C;
  k::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, p[LN1W], p[LN1B], N, C);
  k::matmul_forward(a.qkv, a.ln1, p[QKVW], p[QKVB], N, C, 3 * C);
  k::attention_forward(a.atty, a.att, a.qkv, B, T, C, NH);
  k::matmul_forward(attproj, a.atty, p[ATTPROJW], p[ATTPROJB], N, C, C);
  k::residual_layernorm_forward(a.res2, a.ln2, a.ln2_mean, a.ln2_rstd, x, attproj,
                                p[LN2W], p[LN2B], N, C);
  k::matmul_forward(a.fch, a.ln2, p[FCW], p[FCB], N, C, 4 * C);
  k::gelu_forward(a.fch_gelu, a.fch, static_cast<std::size_t>(N) * 4 * C);
  k::matmul_forward(fcproj, a.fch_gelu, p[FCPROJW], p[FCPROJB], N, 4 * C, C);
  add_into(a.out, a.res2, fcproj, static_cast<std::size_t>(N) * C);
}

void CpuStageModel::run_weight_grads(Stash& base, const LayerGradsDone& done) {
  CpuStash& stash = static_cast<CpuStash&>(base);
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
  kept_pool_.push_back(std::move(stash.kept_gradients));
  stash.kept_gradients.clear();
}

// The gradient flowing down the stage ping-pongs between grad_a_ and grad_b_. A whole
// backward makes each layer's parameter gradients right after its input gradient, from
// scratch; a split one keeps what they need in the stash for backward_weight.
void CpuStageModel::run_backward(Stash& base, const float* dout, bool split, const LayerGradsDone& done) {
  CpuStash& stash = static_cast<CpuStash&>(base);
  const std::size_t NC = static_cast<std::size_t>(stash.B) * shape_.max_seq_len * shape_.channels;
  float* cur = grad_a_.data();
  float* next = grad_b_.data();
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
    std::copy(dout, dout + NC, cur);
  }
  for (; layer >= first_layer_; --layer) {
    LayerGradients g = layer_gradients(stash, layer, split);
    if (split) {
      std::copy(cur, cur + NC, g.dout);
    } else {
      g.dout = cur;
    }
    if (shape_.layer_kind(layer) == LayerKind::LayerKindEmbedding) {
      if (!split) embedding_weight_grads(stash, g);
      if (!split && done) done(layer);
      break;
    }
    const float* x = layer_input(stash, layer);
    const BlockActs acts = block_activations(stash, layer, !split);
    block_input_grad(stash.B, layer, x, acts, g, next);
    if (!split) block_weight_grads(stash.B, layer, x, acts, g);
    if (!split && done) done(layer);
    std::swap(cur, next);
  }
  input_grad_ = has_embedding() ? nullptr : cur;
}

const float* CpuStageModel::layer_input(const CpuStash& stash, int layer) const {
  if (layer == first_layer_) return stash.input.data();
  switch (shape_.layer_kind(layer - 1)) {
    case LayerKind::LayerKindEmbedding: return stash.layer[layer - 1 - first_layer_].data();
    case LayerKind::LayerKindBlock: return block_output(stash, layer - 1);
    case LayerKind::LayerKindHead: break;
  }
  PPT_THROW("layer {} follows the head", layer);
}

const float* CpuStageModel::block_output(const CpuStash& stash, int layer) const {
  const float* a = stash.layer[layer - first_layer_].data();
  if (stash.recompute == Recompute::Full) return a;
  const bool keeps_pointwise = stash.recompute != Recompute::Selective;
  return a + CpuBlockLayout(stash.B, shape_.max_seq_len, shape_.channels, shape_.n_head, keeps_pointwise).out;
}

CpuStageModel::BlockActs CpuStageModel::stash_activations(CpuStash& stash, int layer) {
  const std::size_t B = stash.B, T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const CpuPointwiseLayout pointwise(B * T, C);
  switch (stash.recompute) {
    case Recompute::None:
      return block_activations_at(stash.layer[layer - first_layer_].data(), CpuBlockLayout(B, T, C, NH),
                                  static_cast<float*>(nullptr), pointwise);
    case Recompute::Selective:
      return block_activations_at(stash.layer[layer - first_layer_].data(),
                                  CpuBlockLayout(B, T, C, NH, false), pointwise_.data(), pointwise);
    case Recompute::Full: break;
  }
  return block_activations_at(recomputed_.data(), CpuBlockLayout(B, T, C, NH),
                              static_cast<float*>(nullptr), pointwise);
}

// Full recomputing writes the scratch's first two units (the projections), which no
// backward reads across this call: the layer's gradients are written after it.
CpuStageModel::BlockActs CpuStageModel::block_activations(CpuStash& stash, int layer, bool for_weight_grads) {
  const BlockActs a = stash_activations(stash, layer);
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const std::vector<float*>& p = layers_[layer - first_layer_].p;
  if (stash.recompute == Recompute::Full) {
    forward_block(stash.B, layer, layer_input(stash, layer), a);
  } else if (stash.recompute == Recompute::Selective && for_weight_grads) {
    // What forward_block made them from, with the same kernels: residual_layernorm_forward
    // normalises the residual it stored, as layernorm_forward does here.
    k::layernorm_forward(a.ln1, a.remade_mean, a.remade_rstd, layer_input(stash, layer), p[LN1W],
                         p[LN1B], N, C);
    k::layernorm_forward(a.ln2, a.remade_mean, a.remade_rstd, static_cast<const float*>(a.res2),
                         p[LN2W], p[LN2B], N, C);
    k::gelu_forward(a.fch_gelu, static_cast<const float*>(a.fch), static_cast<std::size_t>(N) * 4 * C);
  }
  return a;
}

CpuStageModel::LayerGradients CpuStageModel::layer_gradients(CpuStash& stash, int layer, bool split) {
  const std::size_t NC = static_cast<std::size_t>(stash.B) * shape_.max_seq_len * shape_.channels;
  const LayerKind kind = shape_.layer_kind(layer);
  float* base = scratch_.data();
  if (split) {
    if (stash.kept_gradients.empty()) take_kept_gradients(kept_pool_, stash.kept_gradients, end_layer_ - first_layer_);
    FloatBuffer& kept = stash.kept_gradients[layer - first_layer_];
    const std::size_t floats = kept_gradient_units(kind) * NC;
    if (kept.size() != floats) kept = FloatBuffer(memory_, MemCategory::Activations, floats);
    base = kept.data();
  }
  LayerGradients g = carve_layer_gradients(base, NC, kind, split);
  if (kind == LayerKind::LayerKindHead) {
    g.dlnf = stash.layer[layer - first_layer_].data() + CpuHeadLayout(stash.B * shape_.max_seq_len, shape_.channels).dlnf;
  }
  return g;
}

// The rest of the head's backward: its forward made dlnf and the LM head's weight gradient.
void CpuStageModel::head_input_grad(CpuStash& stash, int layer, const LayerGradients& g, float* dinp) {
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const CpuHeadLayout h(N, C);
  const float* a = stash.layer[layer - first_layer_].data();
  const LayerTensors& t = layers_[layer - first_layer_];
  zero(dinp, static_cast<std::size_t>(N) * C);
  k::layernorm_backward(dinp, static_cast<float*>(nullptr), static_cast<float*>(nullptr), g.dlnf,
                        layer_input(stash, layer), t.p[HEAD_LNFW], a + h.lnf_mean, a + h.lnf_rstd, N, C);
}

void CpuStageModel::head_weight_grads(CpuStash& stash, int layer, const LayerGradients& g) {
  const int N = stash.B * shape_.max_seq_len, C = shape_.channels;
  const CpuHeadLayout h(N, C);
  const float* a = stash.layer[layer - first_layer_].data();
  const LayerTensors& t = layers_[layer - first_layer_];
  k::layernorm_backward(static_cast<float*>(nullptr), t.g[HEAD_LNFW], t.g[HEAD_LNFB], g.dlnf,
                        layer_input(stash, layer), t.p[HEAD_LNFW], a + h.lnf_mean, a + h.lnf_rstd, N, C);
}

void CpuStageModel::embedding_weight_grads(CpuStash& stash, const LayerGradients& g) {
  const LayerTensors& t = layers_[0];
  k::encoder_backward(t.g[EMB_WTE], t.g[EMB_WPE], g.dout, stash.tokens.data(), stash.B,
                      shape_.max_seq_len, shape_.channels);
}

void CpuStageModel::block_input_grad(int B, int layer, const float* x, const BlockActs& a,
                                     const LayerGradients& g, float* dinp) {
  const int T = shape_.max_seq_len, C = shape_.channels, NH = shape_.n_head;
  const int N = B * T;
  const std::size_t NC = static_cast<std::size_t>(N) * C;
  const std::vector<float*>& p = layers_[layer - first_layer_].p;
  float* none = nullptr;                 // parameter gradients: block_weight_grads
  float* dfch_gelu = scratch_.data() + kScratchDfchGelu * NC;  // (N,4C)
  float* datty = scratch_.data() + kScratchDatty * NC;          // (N,C)
  // out = res2 + fcproj(gelu(fc(ln2(res2)))): d(res2) gets dout directly and via the MLP.
  zero(dfch_gelu, 4 * NC);
  k::matmul_backward(dfch_gelu, none, none, g.dout, a.fch_gelu, p[FCPROJW], N, 4 * C, C);
  zero(g.dfch, 4 * NC);
  k::gelu_backward(g.dfch, a.fch, dfch_gelu, 4 * NC);
  zero(g.dln2, NC);
  k::matmul_backward(g.dln2, none, none, g.dfch, a.ln2, p[FCW], N, C, 4 * C);
  std::copy(g.dout, g.dout + NC, g.dres2);
  k::layernorm_backward(g.dres2, none, none, g.dln2, a.res2, p[LN2W], a.ln2_mean,
                        a.ln2_rstd, N, C);
  // res2 = x + attproj(attention(qkv(ln1(x)))): d(x) gets d(res2) directly and via attention.
  zero(datty, NC);
  k::matmul_backward(datty, none, none, g.dres2, a.atty, p[ATTPROJW], N, C, C);
  zero(g.dqkv, 3 * NC);
  k::attention_backward(g.dqkv, datty, a.qkv, a.att, B, T, C, NH);
  zero(g.dln1, NC);
  k::matmul_backward(g.dln1, none, none, g.dqkv, a.ln1, p[QKVW], N, C, 3 * C);
  std::copy(g.dres2, g.dres2 + NC, dinp);
  k::layernorm_backward(dinp, none, none, g.dln1, x, p[LN1W], a.ln1_mean, a.ln1_rstd, N, C);
}

void CpuStageModel::block_weight_grads(int B, int layer, const float* x, const BlockActs& a,
                                       const LayerGradients& g) {
  const int T = shape_.max_seq_len, C = shape_.channels;
  const int N = B * T;
  const std::vector<float*>& p = layers_[layer - first_layer_].p;
  const std::vector<float*>& gr = layers_[layer - first_layer_].g;
  float* none = nullptr;  // input gradients: block_input_grad
  k::matmul_backward(none, gr[FCPROJW], gr[FCPROJB], g.dout, a.fch_gelu, p[FCPROJW], N, 4 * C, C);
  k::matmul_backward(none, gr[FCW], gr[FCB], g.dfch, a.ln2, p[FCW], N, C, 4 * C);
  k::layernorm_backward(none, gr[LN2W], gr[LN2B], g.dln2, a.res2, p[LN2W], a.ln2_mean,
                        a.ln2_rstd, N, C);
  k::matmul_backward(none, gr[ATTPROJW], gr[ATTPROJB], g.dres2, a.atty, p[ATTPROJW], N, C, C);
  k::matmul_backward(none, gr[QKVW], gr[QKVB], g.dqkv, a.ln1, p[QKVW], N, C, 3 * C);
  k::layernorm_backward(none, gr[LN1W], gr[LN1B], g.dln1, x, p[LN1W], a.ln1_mean, a.ln1_rstd,
                        N, C);
}

const float* CpuStageModel::output(const Stash& base) const {
  const CpuStash& stash = static_cast<const CpuStash&>(base);
  PPT_CHECK(!has_head(), "the last stage has no activation output");
  const int last = end_layer_ - 1;
  if (shape_.layer_kind(last) == LayerKind::LayerKindEmbedding) return stash.layer[0].data();
  return block_output(stash, last);
}

const float* CpuStageModel::logits(const Stash& base) const {
  const CpuStash& stash = static_cast<const CpuStash&>(base);
  PPT_CHECK(has_head() && logits_owner_ == &stash && !stash.head_grads,
            "logits are kept only for the last stage's latest forward, and only one without gradient");
  return logits_.data();
}

const float* CpuStageModel::losses(const Stash& base) const {
  const CpuStash& stash = static_cast<const CpuStash&>(base);
  PPT_CHECK(has_head(), "only the last stage computes losses");
  const CpuHeadLayout h(static_cast<std::size_t>(stash.B) * shape_.max_seq_len, shape_.channels);
  return stash.layer.back().data() + h.losses;
}

const float* CpuStageModel::input_grad() const {
  PPT_CHECK(input_grad_ != nullptr, "no input gradient: first stage, or no backward yet");
  return input_grad_;
}

std::size_t CpuStageModel::activation_words(int batch) const {
  return static_cast<std::size_t>(batch) * shape_.max_seq_len * shape_.channels;
}

namespace {
class HostWordBuffer final : public WordBuffer {
 public:
  HostWordBuffer(MemoryTracker& memory, std::size_t words)
      : buffer_(memory, MemCategory::Activations, words) {}
  float* data() override { return buffer_.data(); }

 private:
  FloatBuffer buffer_;
};
}  // namespace

std::unique_ptr<WordBuffer> CpuStageModel::make_message_buffer(std::size_t words) {
  return std::make_unique<HostWordBuffer>(memory_, words);
}

void CpuStageModel::copy_logits_row(const Stash& stash, int row, std::vector<float>& out) const {
  PPT_CHECK(row >= 0 && row < stash.B * shape_.max_seq_len, "logits row {} outside the batch", row);
  const float* r = logits(stash) + static_cast<std::size_t>(row) * shape_.padded_vocab_size;
  out.assign(r, r + shape_.padded_vocab_size);
}

void CpuStageModel::copy_input_grad(float* dst, int batch) const {
  const float* dx = input_grad();
  std::copy(dx, dx + activation_words(batch), dst);
}

std::size_t CpuStageModel::grad_word_offset(std::size_t entry) const {
  return table_.entries().at(entry).offset;
}

double CpuStageModel::grad_sum_of_squares(bool without_tied_wte) {
  double sq = k::sum_of_squares(grads_.data(), num_params());
  if (without_tied_wte) {
    sq -= k::sum_of_squares(grad("wte"), table_.find("wte").spec.numel());
  }
  return sq;
}

void CpuStageModel::sum_tied_wte_grads(StageModel& other) {
  float* a = grad("wte");
  float* b = other.grad("wte");
  const std::size_t n = table_.find("wte").spec.numel();
  for (std::size_t i = 0; i < n; ++i) b[i] = a[i] = a[i] + b[i];
}

void CpuStageModel::optimizer_step(const TrainingConfig& training, float lr, int t,
                                   float grad_scale) {
  const kernels::AdamwStep step = adamw_step(training, lr, t, grad_scale);
  for (const ParamEntry& e : table_.entries()) {
    const std::size_t o = e.offset;
    const float decay = e.spec.decay ? static_cast<float>(training.weight_decay) : 0.0f;
    k::adamw_update(params_.data() + o, grads_.data() + o, adam_m_.data() + o, adam_v_.data() + o,
                    e.spec.numel(), step, decay);
  }
}

void CpuStageModel::read_params(float* dst) const { std::copy_n(params_.data(), num_params(), dst); }
void CpuStageModel::write_params(const float* src) { std::copy_n(src, num_params(), params_.data()); }

void CpuStageModel::read_moments(float* m, float* v) const {
  std::copy_n(adam_m_.data(), num_params(), m);
  std::copy_n(adam_v_.data(), num_params(), v);
}

void CpuStageModel::write_moments(const float* m, const float* v) {
  std::copy_n(m, num_params(), adam_m_.data());
  std::copy_n(v, num_params(), adam_v_.data());
}

}  // namespace pptrain
