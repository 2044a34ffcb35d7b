// pptrain_bench_cuda: times every CUDA kernel of one GPT-2 124M training step (B=16, T=1024,
// C=768, NH=12, L=12, V=50257 padded to 50304), in bf16 and fp32 storage, and prints a
// markdown table: median ms per launch, achieved TFLOP/s (matmuls, attention) or GB/s (the
// memory-bound kernels), the calls per step, and a summed "one training step of kernels"
// estimate with tokens/s and MFU (lib/metrics/throughput.h, the project's one definition).
// Rows with 0 calls per step are not in that sum: other ways to do a row's work (another
// classifier kernel, dbias in cuBLASLt's epilogue, cuBLASLt's later algorithm answers, tile
// shapes). The summary names those faster than the default by over 1% and the step they would
// give ("faster alternatives", ALTERNATIVES_SUMMARY): what the next change should switch on.
//
// Method (docs/gpu-checks.md): inputs are random, never zeros (zeros flatter tensor cores and
// hide indexing bugs); pure outputs are poisoned (NaN) before the first launch and checked
// for non-finite values after the last, so a kernel that skips work cannot look fast;
// accumulating outputs start from small random values. Each sample is timed with CUDA events
// around `iters` back-to-back launches after `warmup` untimed samples; the median sample is
// reported. Exit codes: 0 all rows ran and were finite, 1 a row failed, 77 no GPU.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "apps/bench/cuda_bench_rows.h"
#include "core/rng.h"
#include "kernels/cuda/attention_tuning.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda_device.h"
#include "metrics/throughput.h"
#include "model/gpt2_shape.h"
#include "model/param_table.h"

namespace {

using namespace pptrain;
using namespace pptrain::bench;

// One dtype's table and step estimate. Returns the number of rows that failed.
int run_dtype(DType dt, const Options& o) {
  const int B = o.B, T = o.T, C = 768, NH = 12, L = 12, V = 50257, Vp = 50304;
  const int C3 = 3 * C, C4 = 4 * C, hs = C / NH;
  const std::size_t N = std::size_t(B) * T, NC = N * C;
  const double s = static_cast<double>(kc::dtype_size(dt));
  const GPT2Shape shape{V, Vp, 1024, L, NH, C};  // GPT-2's 1024 positions, whatever T is
  const std::size_t n_params = shape.num_parameters();
  const DType F = DType::F32;

  // Random inputs (weights at GPT-2's init scale, activations at unit scale).
  Tensor wte(std::size_t(Vp) * C, dt), wpe(std::size_t(T) * C, dt), x(NC, dt), x2(NC, dt);
  wte.random(1, 0.02);
  wpe.random(2, 0.02);
  x.random(3, 1.0);
  x2.random(4, 1.0);
  Tensor lnw(C, dt), lnb(C, dt), qkvw(std::size_t(C3) * C, dt), qkvb(C3, dt),
      attw(std::size_t(C) * C, dt), attb(C, dt), fcw(std::size_t(C4) * C, dt), fcb(C4, dt),
      fcpw(std::size_t(C) * C4, dt), fcpb(C, dt);
  lnw.random(5, 1.0);
  lnb.random(6, 0.1);
  qkvw.random(7, 0.02);
  qkvb.random(8, 0.02);
  attw.random(9, 0.02);
  attb.random(10, 0.02);
  fcw.random(11, 0.02);
  fcb.random(12, 0.02);
  fcpw.random(13, 0.02);
  fcpb.random(14, 0.02);
  Tensor qkv_in(N * C3, dt), h(N * C4, dt), logits_src(N * Vp, dt), dy(NC, dt), dy4(N * C4, dt);
  qkv_in.random(15, 1.0);
  h.random(16, 1.0);
  logits_src.random(17, 1.0);
  dy.random(18, 1.0);
  dy4.random(19, 1.0);
  std::vector<int> host_ids(N), host_targets(N);
  Rng rng(stream_key(20, "bench_cuda_ids"));
  for (std::size_t i = 0; i < N; ++i) {
    host_ids[i] = static_cast<int>(rng.below(V));
    host_targets[i] = static_cast<int>(rng.below(V));
  }
  Tensor ids(N, F), targets(N, F);
  ids.buf.copy_from_host(host_ids.data(), N * sizeof(int));
  targets.buf.copy_from_host(host_targets.data(), N * sizeof(int));
  const double unique_ids =
      static_cast<double>(std::set<int>(host_ids.begin(), host_ids.end()).size());

  // Pure outputs, poisoned.
  Tensor enc_out(NC, dt), ln_out(NC, dt), mean(N, F), rstd(N, F), res_out(NC, dt), ln2_out(NC, dt),
      mean2(N, F), rstd2(N, F), qkv_out(N * C3, dt), att_out(NC, dt),
      lse(std::size_t(B) * NH * T, F), proj_out(NC, dt), fc_pre(N * C4, dt), fc_out(N * C4, dt),
      fcp_out(NC, dt), logits(N * Vp, dt), losses(N, F);
  for (Tensor* t : {&enc_out, &ln_out, &mean, &rstd, &res_out, &ln2_out, &mean2, &rstd2, &qkv_out,
                    &att_out, &lse, &proj_out, &fc_pre, &fc_out, &fcp_out, &logits, &losses}) {
    t->poisoned();
  }
  // Accumulated outputs (+=): small random starts; fp32 parameter gradients.
  Tensor dx(NC, dt), dqkv(N * C3, dt), dh(N * C4, dt), dwte(std::size_t(Vp) * C, F),
      dwpe(std::size_t(T) * C, F), dlnw(C, F), dlnb(C, F), dW(std::size_t(C4) * C, F), db(C4, F);
  std::uint64_t seed = 100;
  for (Tensor* t : {&dx, &dqkv, &dh, &dwte, &dwpe, &dlnw, &dlnb, &dW, &db}) t->random(seed++, 1e-3);
  // Optimizer over every parameter: fp32 master weights, gradients and moments (v >= 0).
  Tensor params(n_params, F), grads(n_params, F), m(n_params, F), v(n_params, F),
      params_bf16(n_params, DType::BF16), acc(2, F);  // acc: one double
  params.random(30, 0.02);
  grads.random(31, 1e-3);
  m.random(32, 1e-3);
  v.random(33, 1e-6, true);
  params_bf16.poisoned();
  acc.buf.zero();
  kc::DeviceBuffer enc_scratch(tracker(), MemCategory::Workspace,
                               kc::encoder_backward_scratch_bytes(B, T, Vp));
  kc::DeviceBuffer sq_scratch(tracker(), MemCategory::Workspace,
                              kc::sum_of_squares_scratch_bytes());
  kc::CublasLtContext ctx(tracker());
  const kc::Stream st{};

  // FLOP and byte counts, per launch (s = bytes per stored element):
  //   matmul forward  2*N*C*OC;  matmul backward 4*N*C*OC (dinp and dweight; dbias not counted)
  //   attention: P = B*NH*T*(T+1)/2 causal (q,k) pairs; forward 4*P*hs (q.k and p.v),
  //     backward 10*P*hs (q.k recomputed, dv, dp, dq, dk), FlashAttention's convention
  //   memory-bound kernels: every tensor read once and every output written once (an
  //     accumulated one read and written): the floor a perfect kernel would move
  //     encoder fwd 4N + 2NCs + TCs; layernorm fwd 2NCs + 8N; residual+layernorm 4NCs + 8N;
  //     layernorm bwd 4NCs + 8N; gelu bwd 4*N*4C*s; classifier 2*N*Vp*s + 8N;
  //     encoder bwd NCs + 4N + 8*U*C + 8TC (U = distinct ids: each dwte row read and written)
  //     sum_of_squares 4n; scale 8n; AdamW 28n (fp32: read p,g,m,v; write p,m,v) + 2n (bf16 copy)
  const double P = double(B) * NH * T * (T + 1) / 2.0, n = static_cast<double>(n_params);
  const double Nd = static_cast<double>(N), NCd = static_cast<double>(NC);
  auto mm_fwd = [&](void* out, Tensor& in, Tensor& w, Tensor* b, int K, int OC,
                    void* pre = nullptr) {
    kc::matmul_forward(ctx, out, in.p(), w.p(), b ? b->p() : nullptr, int(N), K, OC, dt, st, pre);
  };
  // The 0-call rows "dbias in cuBLASLt's epilogue" run a call with the BGRADB epilogue switched
  // on (off by default, kernels/cuda/cuda_ops.h): what it saves over the column-sum pass.
  auto with_bias_epilogue = [&](const std::function<void()>& call) {
    ctx.set_bias_grad_epilogue(true);
    try {
      call();
    } catch (...) {
      ctx.set_bias_grad_epilogue(false);  // the rows after a failed one run the defaults
      throw;
    }
    ctx.set_bias_grad_epilogue(false);
  };
  auto mm_bwd = [&](void* din, float* dbias, Tensor& dout, Tensor& in, Tensor& w, int K, int OC) {
    kc::matmul_backward(ctx, din, dW.f(), dbias, dout.p(), in.p(), w.p(), int(N), K, OC, dt, st);
  };
  std::vector<Row> rows;
  auto add = [&](const char* name, int calls, double flops, double bytes, std::vector<Tensor*> outs,
                 std::function<void()> launch, std::function<void()> prepare = {}) {
    rows.push_back({name, calls, flops, bytes, std::move(launch), std::move(prepare), outs, 0, {}});
  };
  // A 0-call row doing row [base]'s work another way (its flops, bytes, outputs and prepare
  // step); the summary says what it would save.
  auto alternative_to = [&](int base, std::string name, std::function<void()> launch, bool quiet) {
    Row alt = rows[base];
    alt.name = std::move(name);
    alt.calls = 0;
    alt.launch = std::move(launch);
    alt.tiling_sweep = 0;
    alt.alternative_of = base;
    alt.quiet = quiet;
    rows.push_back(std::move(alt));
  };
  // ... of the last row that is not itself an alternative.
  auto alternative = [&](std::string name, std::function<void()> launch) {
    const int last = static_cast<int>(rows.size()) - 1;
    const int base = rows[last].alternative_of >= 0 ? rows[last].alternative_of : last;
    alternative_to(base, std::move(name), std::move(launch), false);
  };
  const int iN = static_cast<int>(N);
  // Forward, in a step's order.
  add("encoder_forward", 1, 0, 4 * Nd + 2 * NCd * s + double(T) * C * s, {&enc_out},
      [&] { kc::encoder_forward(enc_out.p(), ids.i(), wte.p(), wpe.p(), B, T, C, dt, st); });
  add("layernorm_forward", 1, 0, 2 * NCd * s + 8 * Nd, {&ln_out, &mean, &rstd}, [&] {
    kc::layernorm_forward(ln_out.p(), mean.f(), rstd.f(), x.p(), lnw.p(), lnb.p(), iN, C, dt, st);
  });
  add("matmul_forward qkv", L, 2 * NCd * C3, 0, {&qkv_out},
      [&] { mm_fwd(qkv_out.p(), x, qkvw, &qkvb, C, C3); });
  const std::size_t attention_forward_row = rows.size();
  add("attention_forward", L, 4 * P * hs, 0, {&att_out, &lse},
      [&] { kc::attention_forward(att_out.p(), lse.f(), qkv_in.p(), B, T, C, NH, dt, st); });
  add("matmul_forward attproj", L, 2 * NCd * C, 0, {&proj_out},
      [&] { mm_fwd(proj_out.p(), x, attw, &attb, C, C); });
  add("residual_layernorm_forward", 2 * L, 0, 4 * NCd * s + 8 * Nd,
      {&res_out, &ln2_out, &mean2, &rstd2}, [&] {
        kc::residual_layernorm_forward(res_out.p(), ln2_out.p(), mean2.f(), rstd2.f(), x.p(),
                                       x2.p(), lnw.p(), lnb.p(), iN, C, dt, st);
      });
  add("matmul_forward fc+gelu", L, 2 * NCd * C4, 0, {&fc_out, &fc_pre},
      [&] { mm_fwd(fc_out.p(), x, fcw, &fcb, C, C4, fc_pre.p()); });
  add("matmul_forward fcproj", L, 2 * NCd * C4, 0, {&fcp_out},
      [&] { mm_fwd(fcp_out.p(), h, fcpw, &fcpb, C4, C); });
  add("matmul_forward lm_head", 1, 2 * NCd * Vp, 0, {&logits},
      [&] { mm_fwd(logits.p(), x, wte, nullptr, C, Vp); });
  // In place (logits become dlogits): the random logits are restored before each launch. The
  // 0-call row holds each row in registers (one HBM read instead of two, one block per SM
  // instead of four): whichever a GPU run shows faster becomes the default.
  add(
      "classifier_forward_backward", 1, 0, 2 * Nd * Vp * s + 8 * Nd, {&logits, &losses},
      [&] {
        kc::classifier_forward_backward(logits.p(), losses.f(), targets.i(), iN, V, Vp,
                                        1.0f / float(N), true, dt, st);
      },
      [&] {
        CUDA_CHECK(
            cudaMemcpy(logits.p(), logits_src.p(), logits.buf.bytes(), cudaMemcpyDeviceToDevice));
      });
  alternative("  classifier_forward_backward, the row held in registers", [&] {
    kc::classifier_forward_backward(logits.p(), losses.f(), targets.i(), iN, V, Vp,
                                    1.0f / float(N), true, dt, st, /*hold_row=*/true);
  });
  // Backward.
  add("matmul_backward lm_head", 1, 4 * NCd * Vp, 0, {&dx, &dwte}, [&] {
    kc::matmul_backward(ctx, dx.p(), dwte.f(), nullptr, logits_src.p(), x.p(), wte.p(), iN, C, Vp,
                        dt, st);
  });
  add("layernorm_backward", 2 * L + 1, 0, 4 * NCd * s + 8 * Nd, {&dx, &dlnw, &dlnb}, [&] {
    kc::layernorm_backward(dx.p(), dlnw.f(), dlnb.f(), dy.p(), x.p(), lnw.p(), mean.f(), rstd.f(),
                           iN, C, dt, st);
  });
  alternative("  layernorm_backward, dweight and dbias summed in the dinp pass", [&] {
    kc::layernorm_backward(dx.p(), dlnw.f(), dlnb.f(), dy.p(), x.p(), lnw.p(), mean.f(), rstd.f(),
                           iN, C, dt, st, nullptr, /*fuse_param_sums=*/true);
  });
  // The two parts apart (0 calls: not in the step's sum): the input gradient, row by row, and
  // the parameter gradients, column sums over all rows.
  add("  layernorm_backward: dinp only", 0, 0, 4 * NCd * s + 8 * Nd, {&dx}, [&] {
    kc::layernorm_backward(dx.p(), nullptr, nullptr, dy.p(), x.p(), lnw.p(), mean.f(), rstd.f(), iN,
                           C, dt, st);
  });
  add("  layernorm_backward: dweight, dbias only", 0, 0, 2 * NCd * s + 8 * Nd, {&dlnw, &dlnb}, [&] {
    kc::layernorm_backward(nullptr, dlnw.f(), dlnb.f(), dy.p(), x.p(), lnw.p(), mean.f(), rstd.f(),
                           iN, C, dt, st);
  });
  // The MLP projection's backward with GELU's derivative (cuBLASLt's DGELU epilogue, or the
  // unfused matmul + gelu_backward when cuBLASLt offers none; the summary line says which).
  auto mm_bwd_gelu = [&] {
    kc::matmul_backward_gelu(ctx, dh.p(), dy4.p(), dW.f(), db.f(), dy.p(), h.p(), h.p(), fcpw.p(),
                             iN, C4, C, dt, st);
  };
  add("matmul_backward_gelu fcproj", L, 4 * NCd * C4, 0, {&dh, &dW, &db}, mm_bwd_gelu);
  alternative("  matmul_backward_gelu fcproj, dbias in cuBLASLt's epilogue",
              [&] { with_bias_epilogue(mm_bwd_gelu); });
  // What the fusion saves (0 calls: not in the step's sum).
  add("  gelu_backward (the unfused path's extra pass)", 0, 0, 4 * Nd * C4 * s, {&dh},
      [&] { kc::gelu_backward(dh.p(), h.p(), dy4.p(), N * C4, dt, st); });
  auto mm_bwd_fc = [&] { mm_bwd(dx.p(), db.f(), dy4, x, fcw, C, C4); };
  add("matmul_backward fc", L, 4 * NCd * C4, 0, {&dx, &dW, &db}, mm_bwd_fc);
  alternative("  matmul_backward fc, dbias in cuBLASLt's epilogue",
              [&] { with_bias_epilogue(mm_bwd_fc); });
  auto mm_bwd_attproj = [&] { mm_bwd(dx.p(), db.f(), dy, x, attw, C, C); };
  add("matmul_backward attproj", L, 4 * NCd * C, 0, {&dx, &dW, &db}, mm_bwd_attproj);
  alternative("  matmul_backward attproj, dbias in cuBLASLt's epilogue",
              [&] { with_bias_epilogue(mm_bwd_attproj); });
  add("attention_backward", L, 10 * P * hs, 0, {&dqkv}, [&] {
    kc::attention_backward(dqkv.p(), dy.p(), qkv_in.p(), att_out.p(), lse.f(), B, T, C, NH, dt, st);
  });
  if (dt == DType::BF16) {
    // The attention kernels' other tile shapes (bitwise the same results; 0 calls: not in the
    // step's sum). The line after the table names the fastest: what training picks at start-up
    // (kc::tune_attention); the rows above use AttentionTiling{}.
    rows[attention_forward_row].tiling_sweep = 1;
    rows[attention_forward_row].tile_shape = kc::forward_shape_name({}) + " (default)";
    rows.back().tiling_sweep = 2;
    rows.back().tile_shape = kc::backward_shape_name({}) + " (default)";
    const auto forward_shapes = kc::attention_forward_tilings();
    for (std::size_t i = 1; i < forward_shapes.size(); ++i) {  // [0] is the default, above
      const kc::AttentionTiling t = forward_shapes[i];
      const std::string name = kc::forward_shape_name(t);
      add(("  attention_forward: " + name).c_str(), 0, 4 * P * hs, 0, {&att_out, &lse}, [&, t] {
        kc::attention_forward(att_out.p(), lse.f(), qkv_in.p(), B, T, C, NH, dt, st, t);
      });
      rows.back().tiling_sweep = 1;
      rows.back().tile_shape = name;
    }
    const auto backward_shapes = kc::attention_backward_tilings();
    for (std::size_t i = 1; i < backward_shapes.size(); ++i) {
      const kc::AttentionTiling t = backward_shapes[i];
      const std::string name = kc::backward_shape_name(t);
      add(("  attention_backward: " + name).c_str(), 0, 10 * P * hs, 0, {&dqkv}, [&, t] {
        kc::attention_backward(dqkv.p(), dy.p(), qkv_in.p(), att_out.p(), lse.f(), B, T, C, NH, dt,
                               st, true, t);
      });
      rows.back().tiling_sweep = 2;
      rows.back().tile_shape = name;
    }
  }
  auto mm_bwd_qkv = [&] { mm_bwd(dx.p(), db.f(), qkv_in, x, qkvw, C, C3); };
  add("matmul_backward qkv", L, 4 * NCd * C3, 0, {&dx, &dW, &db}, mm_bwd_qkv);
  alternative("  matmul_backward qkv, dbias in cuBLASLt's epilogue",
              [&] { with_bias_epilogue(mm_bwd_qkv); });
  add("encoder_backward", 1, 0, NCd * s + 4 * Nd + 8 * unique_ids * C + 8.0 * T * C, {&dwte, &dwpe},
      [&] {
        kc::encoder_backward(dwte.f(), dwpe.f(), dy.p(), ids.i(), B, T, C, Vp, dt,
                             enc_scratch.data(), enc_scratch.bytes(), st);
      });
  // Optimizer, over all n parameters.
  add("sum_of_squares (grad norm)", 1, 0, 4 * n, {}, [&] {
    kc::sum_of_squares(acc.d(), grads.f(), n_params, sq_scratch.data(), sq_scratch.bytes(), st);
  });
  // AdamW as a stage steps: the model's tensors (148 for GPT-2 124M, many of 768 values) in
  // batched launches, the clip factor applied as the gradients are read. The 0-call row is one
  // launch per tensor, as before the batching: what the batching saves.
  std::vector<kc::AdamwTensor> adamw_tensors;
  {
    ParamTable table;
    for (int layer = 0; layer < shape.num_layers(); ++layer) {
      for (const ParamSpec& spec : shape.layer_params(layer)) table.add(spec);
    }
    for (const ParamEntry& e : table.entries()) {
      adamw_tensors.push_back({e.offset, e.spec.numel(), e.spec.decay ? 0.1f : 0.0f, 42});
    }
  }
  const kc::AdamwBuffers adamw_buffers{params.f(), dt == DType::BF16 ? params_bf16.h() : nullptr,
                                       grads.f(), m.f(), v.f()};
  const kernels::AdamwStep adamw_step{1e-4f, 0.9f, 0.95f, 1e-8f, 1, 0.9999f};
  const double adamw_bytes = (dt == DType::BF16 ? 30 : 28) * n;
  // The bf16 copy is an output only in bf16: in fp32 it stays poisoned (run 8 counted it).
  std::vector<Tensor*> adamw_outputs{&params, &m, &v};
  if (dt == DType::BF16) adamw_outputs.push_back(&params_bf16);
  const std::string adamw_name = fmt::format("adamw_update ({} tensors)", adamw_tensors.size());
  add(adamw_name.c_str(), 1, 0, adamw_bytes, adamw_outputs,
      [&] { kc::adamw_update(adamw_buffers, adamw_tensors, adamw_step, st); });
  add("  adamw_update, one launch per tensor", 0, 0, adamw_bytes, adamw_outputs, [&] {
    for (const kc::AdamwTensor& t : adamw_tensors) kc::adamw_update(adamw_buffers, {t}, adamw_step, st);
  });
  // dW and db hold every matmul's weight gradient (the widest shape); the bench needs their
  // timing, not their values. The real step also zeroes gradients (a memset): not counted.

  // cuBLASLt's 2nd to 4th answers for each matmul call of the step, every product of the call
  // on the same answer (bf16 only: fp32 matmuls take seconds). Quiet: the summary names those
  // faster than the first answer, which is what the heuristic's ranking leaves.
  if (dt == DType::BF16) {
    const std::size_t defined = rows.size();
    for (std::size_t i = 0; i < defined; ++i) {
      if (rows[i].calls == 0 || rows[i].name.rfind("matmul", 0) != 0) continue;
      for (int k = 1; k <= 3; ++k) {
        auto picked = [&ctx, base_launch = rows[i].launch, k] {
          ctx.set_heuristic_pick(k);
          try {
            base_launch();
          } catch (...) {
            ctx.set_heuristic_pick(0);
            throw;
          }
          ctx.set_heuristic_pick(0);
        };
        alternative_to(static_cast<int>(i), fmt::format("{}, cuBLASLt's answer {}", rows[i].name, k + 1),
                       picked, /*quiet=*/true);
      }
    }
  }

  fmt::print("\n### {} storage, B={} T={} C={} NH={} L={} Vp={} ({:.2f}M params)\n\n",
             kc::dtype_name(dt), B, T, C, NH, L, Vp, n / 1e6);
  fmt::print("| kernel | calls/step | ms (median of {}) | TFLOP/s | GB/s | ms/step | outputs |\n",
             o.reps);
  fmt::print("|---|---|---|---|---|---|---|\n");
  double step_ms = 0.0;
  int failed = 0;
  // The fastest attention tile shape of each sweep (1 forward, 2 backward): row, ms; and the
  // default shape's row (the one in the step's sum).
  std::pair<const Row*, double> fastest[3] = {}, in_step[3] = {};
  std::vector<double> measured(rows.size(), -1.0);  // ms per launch; -1: failed
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    if (row.quiet) continue;  // timed last, for the summary only
    try {
      const double ms = time_row(row, o);
      measured[r] = ms;
      auto& best = fastest[row.tiling_sweep];
      if (row.tiling_sweep != 0 && (best.first == nullptr || ms < best.second)) best = {&row, ms};
      if (row.tiling_sweep != 0 && row.calls > 0) in_step[row.tiling_sweep] = {&row, ms};
      std::size_t bad = 0;
      for (const Tensor* t : row.outputs) bad += t->count_nonfinite();
      step_ms += ms * row.calls;
      failed += bad > 0;
      fmt::print("| {} | {} | {:.4f} | {} | {} | {:.3f} | {} |\n", row.name, row.calls, ms,
                 row.flops > 0 ? fmt::format("{:.1f}", row.flops / (ms * 1e-3) / 1e12) : "-",
                 row.bytes > 0 ? fmt::format("{:.0f}", row.bytes / (ms * 1e-3) / 1e9) : "-",
                 ms * row.calls, bad == 0 ? "finite" : fmt::format("{} NON-FINITE", bad));
    } catch (const std::exception& e) {
      ++failed;
      fmt::print("| {} | {} | error | - | - | - | {} |\n", row.name, row.calls, e.what());
    }
    std::fflush(stdout);
  }
  // The host's side of the same step: the wall time to queue every call in the step's sum once,
  // with no wait (the GPU runs behind). Values are not checked: in-place rows run unrestored.
  // Where the GPU's step is shorter than this (small micro-batches), the host bounds the speed.
  try {
    kc::synchronize(st);
    long calls = 0;
    const auto host_start = std::chrono::steady_clock::now();
    for (const Row& row : rows) {
      for (int c = 0; c < row.calls; ++c) row.launch();
      calls += row.calls;
    }
    const double host_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count();
    kc::synchronize(st);
    fmt::print("\nhost: {:.2f} ms to queue the step's {} op calls without waiting ({:.1f} us a call); "
               "the GPU's step: {:.2f} ms\n",
               host_ms, calls, 1e3 * host_ms / static_cast<double>(calls), step_ms);
  } catch (const std::exception& e) {
    fmt::print("\nhost: queueing time not measured: {}\n", e.what());
  }
  const double tps = tokens_per_second(static_cast<std::int64_t>(N), step_ms * 1e-3);
  const double fpt = model_flops_per_token(n, L, C, T);
  if (fastest[1].first != nullptr && fastest[2].first != nullptr && in_step[1].first != nullptr &&
      in_step[2].first != nullptr) {
    double best_step_ms = step_ms;
    for (int sweep : {1, 2}) {
      best_step_ms += in_step[sweep].first->calls * (fastest[sweep].second - in_step[sweep].second);
    }
    fmt::print(
        "\nfastest attention tile shapes: forward {} ({:.4f} ms), backward {} ({:.4f} ms); "
        "a step with them {:.2f} ms, {:.0f} tokens/s\n",
        fastest[1].first->tile_shape, fastest[1].second, fastest[2].first->tile_shape,
        fastest[2].second, best_step_ms,
        tokens_per_second(static_cast<std::int64_t>(N), best_step_ms * 1e-3));
  }
  fmt::print("\nGELU epilogue fused in cuBLASLt: {} fused / {} unfused calls\n",
             ctx.gelu_fused_calls(), ctx.gelu_unfused_calls());
  fmt::print("dbias from cuBLASLt's BGRADB epilogue (the 0-call rows): {} calls took it\n",
             ctx.bias_grad_epilogue_calls());
  // The quiet rows after those counts (a later answer may lack the GELU epilogue and fall back).
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].quiet) continue;
    try {
      measured[r] = time_row(rows[r], o);
    } catch (const std::exception&) {  // no such answer for this call
    }
  }
  print_alternatives(dt, rows, measured, step_ms, static_cast<std::int64_t>(N), fpt);
  fmt::print(
      "one training step of kernels ({}): {:.2f} ms for {} tokens -> {:.0f} tokens/s, "
      "MFU {:.1f}% ({:.3g} model FLOP/token, peak {:.0f} TFLOP/s bf16 dense){}\n",
      kc::dtype_name(dt), step_ms, N, tps, 100.0 * mfu(tps, fpt), fpt, kH200Bf16PeakFlops / 1e12,
      failed ? " [INCOMPLETE: failed rows]" : "");
  fmt::print(
      "STEP_SUMMARY dtype={} step_ms={:.3f} tokens_per_s={:.0f} mfu_pct={:.2f} failed_rows={}\n",
      kc::dtype_name(dt), step_ms, tps, 100.0 * mfu(tps, fpt), failed);
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pptrain_bench_cuda: time each CUDA kernel of a GPT-2 124M training step"};
  Options o;
  app.add_option("-B,--batch", o.B, "micro-batch size")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("-T,--seq", o.T, "sequence length")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed samples first")->capture_default_str();
  app.add_option("--reps", o.reps, "timed samples (median reported)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--iters", o.iters, "launches per sample")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--dtype", o.dtype, "bf16, fp32 or both")
      ->check(CLI::IsMember({"bf16", "fp32", "both"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (kc::device_count() == 0) {
    std::printf("no GPU: pptrain_bench_cuda measured nothing\n");
    return 77;
  }
  try {
    fmt::print("pptrain_bench_cuda on {}\n", kc::device_description(0));
    kc::use_device(0);  // as training does: the stream-ordered pool keeps the ops' scratch
    int failed = 0;
    if (o.dtype != "fp32") failed += run_dtype(DType::BF16, o);
    if (o.dtype != "bf16") failed += run_dtype(DType::F32, o);
    fmt::print("\n{}\n", failed ? fmt::format("{} row(s) FAILED", failed)
                                : std::string("all rows ran, outputs finite"));
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pptrain_bench_cuda: error: %s\n", e.what());
    return 1;
  }
}
