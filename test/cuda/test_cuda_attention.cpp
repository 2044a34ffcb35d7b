// [cuda] causal attention: the flash-style forward (out and logsumexp) and the recomputing
// backward against the CPU twin (kernels/attention.h, which stores the (T,T) probabilities),
// fp32 and bf16 storage.
#include <algorithm>
#include <cmath>

#include "cuda_test_util.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_tuning.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct AttShape {
  int B, T, C, NH;
};
// Head sizes 24, 12, 8 (HS_MAX 32), 36 and 64 (HS_MAX 64), 72 and 128 (HS_MAX 128, above 48 KiB
// of shared memory); T = 1, 7, 33, 40, 65, 129: single rows, partial tiles, several tiles.
// The bf16 tensor-core kernels tile by 64 rows and stage 8 values per load when hs and C are
// multiples of 8: the second row adds hs = 32, 48, 80 (vectorised, k-steps padded to HS_MAX),
// T = 200 and 257 (several 64-tiles with a ragged tail; at hs = 128 the dk/dv kernel walks query
// tiles of 32), B * NH = 36 with T = 64 (one exact tile) and a long T = 1024 at hs = 64; hs = 9
// (odd: rows not 4-byte aligned, so the kernels' paired bf16 accesses fall back to single ones).
const AttShape kShapes[] = {{1, 1, 24, 1},    {2, 7, 36, 3},     {1, 65, 24, 3},
                            {2, 65, 36, 1},   {1, 129, 192, 3},  {1, 33, 72, 1},
                            {2, 40, 256, 2},  {2, 200, 128, 4},  {1, 130, 144, 3},
                            {1, 97, 80, 1},   {1, 257, 128, 1},  {3, 64, 768, 12},
                            {1, 1024, 128, 2}, {2, 70, 45, 5}};

// lse[b,h,t] = log sum_{t2<=t} exp(scale q_t.k_t2), in double.
std::vector<float> reference_lse(const std::vector<float>& inp, const AttShape& s) {
  const int hs = s.C / s.NH, C3 = 3 * s.C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  std::vector<float> lse(std::size_t(s.B) * s.NH * s.T);
  for (int b = 0; b < s.B; ++b) {
    for (int h = 0; h < s.NH; ++h) {
      for (int t = 0; t < s.T; ++t) {
        std::vector<double> scores(t + 1);
        double m = -INFINITY;
        for (int t2 = 0; t2 <= t; ++t2) {
          double dot = 0.0;
          for (int d = 0; d < hs; ++d) {
            dot += static_cast<double>(inp[(std::size_t(b) * s.T + t) * C3 + h * hs + d]) *
                   inp[(std::size_t(b) * s.T + t2) * C3 + s.C + h * hs + d];
          }
          scores[t2] = dot * scale;
          m = std::max(m, scores[t2]);
        }
        double sum = 0.0;
        for (const double x : scores) sum += std::exp(x - m);
        lse[(std::size_t(b) * s.NH + h) * s.T + t] = static_cast<float>(m + std::log(sum));
      }
    }
  }
  return lse;
}

}  // namespace

TEST_CASE("CUDA attention forward/backward match the CPU twin", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const AttShape& s : kShapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", B=" << s.B << " T=" << s.T << " C=" << s.C
                    << " NH=" << s.NH);
      const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
      const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
      const auto inp = rounded(randn(3 * BTC, 500), dt);
      std::vector<float> out_ref(BTC), att_ref(lse_n * s.T);
      cpu::attention_forward(out_ref.data(), att_ref.data(), inp.data(), s.B, s.T, s.C, s.NH);
      const auto lse_ref = reference_lse(inp, s);

      DeviceArray d_inp = DeviceArray::from(inp, dt), d_out(BTC, dt), d_lse(lse_n, DType::F32);
      d_out.poison();
      d_lse.poison();
      kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {});
      check_close("attention out", d_out.to_host(), out_ref, tolerance(dt));
      // lse is fp32 math on identical inputs in both modes.
      check_close("attention lse", d_lse.to_host(), lse_ref, kF32Tol);

      // Backward with the GPU's own out and lse, as training runs it.
      const auto dout = rounded(randn(BTC, 501), dt);
      auto grad = zeros(3 * BTC);
      cpu::attention_backward(grad.data(), dout.data(), inp.data(), att_ref.data(), s.B, s.T, s.C,
                              s.NH);
      const auto start = accumulator_start(grad, dt, 502);
      DeviceArray d_dout = DeviceArray::from(dout, dt), d_dinp = DeviceArray::from(start, dt);
      kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                             s.B, s.T, s.C, s.NH, dt, {});
      const auto result = d_dinp.to_host();
      check_accumulated("attention dinp (q, k, v)", result, start, grad, tolerance(dt));
      // q, k and v parts separately: an error confined to one third must not hide in the others.
      for (int part = 0; part < 3; ++part) {
        std::vector<float> r, st, g;
        for (std::size_t bt = 0; bt < std::size_t(s.B) * s.T; ++bt) {
          for (int c = 0; c < s.C; ++c) {
            const std::size_t i = bt * 3 * s.C + std::size_t(part) * s.C + c;
            r.push_back(result[i]);
            st.push_back(start[i]);
            g.push_back(grad[i]);
          }
        }
        check_accumulated(std::string("attention d") + "qkv"[part], r, st, g, tolerance(dt));
      }
    }
  }
}

TEST_CASE("CUDA attention backward can overwrite dinp instead of adding to it", "[cuda]") {
  // A partial tile, several tiles with a ragged tail (both head-size paths), several heads.
  const AttShape shapes[] = {{2, 7, 36, 3}, {1, 130, 144, 3}, {1, 97, 80, 1}};
  for (const DType dt : {DType::F32, DType::BF16}) {
    for (const AttShape& s : shapes) {
      INFO("dtype " << kc::dtype_name(dt) << ", B=" << s.B << " T=" << s.T << " C=" << s.C
                    << " NH=" << s.NH);
      const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
      const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
      const auto inp = rounded(randn(3 * BTC, 530), dt);
      const auto dout = rounded(randn(BTC, 531), dt);
      std::vector<float> out_ref(BTC), att_ref(lse_n * s.T);
      cpu::attention_forward(out_ref.data(), att_ref.data(), inp.data(), s.B, s.T, s.C, s.NH);
      auto grad = zeros(3 * BTC);
      cpu::attention_backward(grad.data(), dout.data(), inp.data(), att_ref.data(), s.B, s.T, s.C,
                              s.NH);
      DeviceArray d_inp = DeviceArray::from(inp, dt), d_out(BTC, dt), d_lse(lse_n, DType::F32),
                  d_dout = DeviceArray::from(dout, dt), d_dinp(3 * BTC, dt);
      kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {});
      d_dinp.poison();  // NaN: an overwrite must never read it
      kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                             s.B, s.T, s.C, s.NH, dt, {}, /*accumulate=*/false);
      check_close("attention dinp, overwritten", d_dinp.to_host(), grad, tolerance(dt));
    }
  }
}

TEST_CASE("CUDA attention is bitwise deterministic", "[cuda]") {
  const AttShape s{2, 200, 192, 3};
  for (const DType dt : {DType::F32, DType::BF16}) {
    INFO("dtype " << kc::dtype_name(dt));
    const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
    const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
    const auto inp = rounded(randn(3 * BTC, 510), dt);
    const auto dout = rounded(randn(BTC, 511), dt);
    const auto start = rounded(randn(3 * BTC, 512), dt);
    DeviceArray d_inp = DeviceArray::from(inp, dt), d_dout = DeviceArray::from(dout, dt);
    std::vector<float> outs[2], lses[2], grads[2];
    for (int run = 0; run < 2; ++run) {
      DeviceArray d_out(BTC, dt), d_lse(lse_n, DType::F32), d_dinp = DeviceArray::from(start, dt);
      kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {});
      kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                             s.B, s.T, s.C, s.NH, dt, {});
      outs[run] = d_out.to_host();
      lses[run] = d_lse.to_host();
      grads[run] = d_dinp.to_host();
    }
    CHECK(outs[0] == outs[1]);
    CHECK(lses[0] == lses[1]);
    CHECK(grads[0] == grads[1]);
  }
}

TEST_CASE("CUDA attention gives bitwise the same results in every tile shape", "[cuda]") {
  // hs = 64 and 32 (vectorised), 36 (element-wise staging); T ragged against 64 and 128 rows,
  // one tile, several; B * NH > 1. Every shape tune_attention may pick, against the default
  // (AttentionTiling{}, first in each list): the forward's out and lse, the backward's dinp.
  const AttShape shapes[] = {{2, 200, 128, 2}, {1, 129, 96, 3}, {2, 65, 36, 1}, {1, 1, 64, 1}};
  const DType dt = DType::BF16;  // fp32 storage has one shape
  const auto forward_shapes = kc::attention_forward_tilings();
  const auto backward_shapes = kc::attention_backward_tilings();
  REQUIRE(forward_shapes.size() == 4);
  REQUIRE(backward_shapes.size() == 16);
  for (const AttShape& s : shapes) {
    const std::size_t BTC = std::size_t(s.B) * s.T * s.C;
    const std::size_t lse_n = std::size_t(s.B) * s.NH * s.T;
    DeviceArray d_inp = DeviceArray::from(rounded(randn(3 * BTC, 540), dt), dt);
    DeviceArray d_dout = DeviceArray::from(rounded(randn(BTC, 541), dt), dt);
    const auto start = rounded(randn(3 * BTC, 542), dt);
    std::vector<float> out0, lse0;
    for (std::size_t v = 0; v < forward_shapes.size(); ++v) {
      INFO("B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH << ", forward "
                << kc::forward_shape_name(forward_shapes[v]));
      DeviceArray d_out(BTC, dt), d_lse(lse_n, DType::F32);
      d_out.poison();
      d_lse.poison();
      kc::attention_forward(d_out.data(), d_lse.f32(), d_inp.data(), s.B, s.T, s.C, s.NH, dt, {},
                            forward_shapes[v]);
      if (v == 0) {
        out0 = d_out.to_host();
        lse0 = d_lse.to_host();
      } else {
        CHECK(d_out.to_host() == out0);
        CHECK(d_lse.to_host() == lse0);
      }
    }
    DeviceArray d_out = DeviceArray::from(out0, dt), d_lse = DeviceArray::from(lse0, DType::F32);
    std::vector<float> grad0;
    for (std::size_t v = 0; v < backward_shapes.size(); ++v) {
      INFO("B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH << ", backward "
                << kc::backward_shape_name(backward_shapes[v]));
      DeviceArray d_dinp = DeviceArray::from(start, dt);
      kc::attention_backward(d_dinp.data(), d_dout.data(), d_inp.data(), d_out.data(), d_lse.f32(),
                             s.B, s.T, s.C, s.NH, dt, {}, true, backward_shapes[v]);
      if (v == 0) {
        grad0 = d_dinp.to_host();
      } else {
        CHECK(d_dinp.to_host() == grad0);
      }
    }
  }
}

TEST_CASE("CUDA attention tuning times every tile shape and keeps the fastest", "[cuda]") {
  const int B = 1, T = 130, C = 128, NH = 2;  // hs = 64
  const std::size_t need = kc::attention_tuning_scratch_bytes(B, T, C, NH, DType::BF16);
  DeviceArray scratch((need + 3) / 4, DType::F32);
  const kc::AttentionTuning r =
      kc::tune_attention(scratch.data(), need, B, T, C, NH, DType::BF16, {}, /*reps=*/1);
  CHECK(r.shapes_timed == 20);
  CHECK(r.forward_ms > 0.0);
  CHECK(r.forward_ms <= r.default_forward_ms);
  CHECK(r.backward_ms > 0.0);
  CHECK(r.backward_ms <= r.default_backward_ms);
  bool listed_forward = false, listed_backward = false;
  for (const auto& t : kc::attention_forward_tilings())
    listed_forward |= kc::forward_shape_name(t) == kc::forward_shape_name(r.tiling);
  for (const auto& t : kc::attention_backward_tilings())
    listed_backward |= kc::backward_shape_name(t) == kc::backward_shape_name(r.tiling);
  CHECK(listed_forward);
  CHECK(listed_backward);
  // One shape only: nothing to time, the default back.
  for (const auto& [dt, c] : {std::pair{DType::F32, 128}, std::pair{DType::BF16, 144}}) {
    const kc::AttentionTuning one = kc::tune_attention(nullptr, 0, B, T, c, 2, dt, {});
    CHECK(one.shapes_timed == 0);
    CHECK(kc::backward_shape_name(one.tiling) == kc::backward_shape_name({}));
  }
  CHECK_THROWS_WITH(kc::tune_attention(scratch.data(), need - 1, B, T, C, NH, DType::BF16, {}),
                    Catch::Matchers::Contains("scratch"));
}
