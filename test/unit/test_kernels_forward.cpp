// CPU kernels: fp32 against fp64 on the same inputs (forward and backward), plus properties
// and hand-computed values that do not need a reference implementation.
#include <omp.h>

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/classifier.h"
#include "kernels/encoder.h"
#include "kernels/gelu.h"
#include "kernels/grad_norm.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "support/tolerance.h"
#include "support/random_inputs.h"

namespace {

namespace k = pptrain::kernels::cpu;
using pptrain::test::relative_error;
using Vec = std::vector<double>;

// fp32 vs fp64 on the same inputs: fp32 round-off is 6e-8 per operation, and the longest sums
// here (C = 768, T = 64) grow it to ~1e-6 at worst for random signs; the layernorm and softmax
// backwards subtract means, which costs up to another ~10x. 1e-5 covers that; a real bug
// (wrong index, missing term) is O(1e-2) or worse.
constexpr double kFloatTol = 1e-5;
// Exact-math identities evaluated in fp64 (a handful of operations each).
constexpr double kDoubleTol = 1e-12;

using pptrain::test::randn;
using pptrain::test::random_ids;

template <typename F>
std::vector<F> cast(const Vec& x) {
  return std::vector<F>(x.begin(), x.end());
}

template <typename F>
using Outputs = std::vector<std::pair<std::string, std::vector<F>>>;

// op is a lambda templated on the precision that builds its inputs from shared fp64 data and
// returns its named outputs; each fp32 output is compared with the fp64 one.
template <typename Op>
void check_float_matches_double(const Op& op) {
  const Outputs<double> ref = op.template operator()<double>();
  const Outputs<float> got = op.template operator()<float>();
  for (std::size_t i = 0; i < ref.size(); ++i) {
    INFO("output " << ref[i].first);
    CHECK(relative_error(got[i].second, ref[i].second) < kFloatTol);
  }
}

}  // namespace

// Each op runs at an odd small shape and at one large enough to take the OpenMP path.
TEST_CASE("encoder: fp32 matches fp64", "[kernels]") {
  for (const auto [B, T, C, Vp] : {std::array{2, 5, 7, 11}, std::array{4, 64, 160, 50}}) {
    const auto ids = random_ids(std::size_t(B) * T, Vp, 1);
    const Vec wte = randn(std::size_t(Vp) * C, 2), wpe = randn(std::size_t(T) * C, 3);
    const Vec dout = randn(std::size_t(B) * T * C, 4);
    check_float_matches_double([&]<typename F>() {
      std::vector<F> out(dout.size()), dwte(wte.size()), dwpe(wpe.size());
      k::encoder_forward(out.data(), ids.data(), cast<F>(wte).data(), cast<F>(wpe).data(), B, T, C);
      k::encoder_backward(dwte.data(), dwpe.data(), cast<F>(dout).data(), ids.data(), B, T, C);
      return Outputs<F>{{"out", out}, {"dwte", dwte}, {"dwpe", dwpe}};
    });
  }
}

TEST_CASE("layernorm: fp32 matches fp64", "[kernels]") {
  for (const auto [N, C] : {std::array{7, 13}, std::array{64, 768}}) {
    const Vec inp = randn(std::size_t(N) * C, 10, 3.0), w = randn(C, 11), b = randn(C, 12);
    const Vec dout = randn(inp.size(), 13);
    check_float_matches_double([&]<typename F>() {
      const auto x = cast<F>(inp), weight = cast<F>(w);
      std::vector<F> out(inp.size()), mean(N), rstd(N), dinp(inp.size()), dw(C), db(C);
      k::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), weight.data(),
                           cast<F>(b).data(), N, C);
      k::layernorm_backward(dinp.data(), dw.data(), db.data(), cast<F>(dout).data(), x.data(),
                            weight.data(), mean.data(), rstd.data(), N, C);
      return Outputs<F>{{"out", out},   {"mean", mean},  {"rstd", rstd},
                        {"dinp", dinp}, {"dweight", dw}, {"dbias", db}};
    });
  }
}

TEST_CASE("matmul: fp32 matches fp64", "[kernels]") {
  for (const auto [N, C, OC] : {std::array{5, 7, 3}, std::array{128, 96, 288}}) {
    const Vec inp = randn(std::size_t(N) * C, 20), w = randn(std::size_t(OC) * C, 21);
    const Vec b = randn(OC, 22), dout = randn(std::size_t(N) * OC, 23);
    check_float_matches_double([&]<typename F>() {
      const auto x = cast<F>(inp), weight = cast<F>(w), dy = cast<F>(dout);
      std::vector<F> out(dout.size()), dinp(inp.size()), dw(w.size()), db(OC);
      k::matmul_forward(out.data(), x.data(), weight.data(), cast<F>(b).data(), N, C, OC);
      k::matmul_backward(dinp.data(), dw.data(), db.data(), dy.data(), x.data(), weight.data(), N,
                         C, OC);
      return Outputs<F>{{"out", out}, {"dinp", dinp}, {"dweight", dw}, {"dbias", db}};
    });
  }
}

TEST_CASE("gelu: fp32 matches fp64", "[kernels]") {
  for (const std::size_t n : {std::size_t{9}, std::size_t{100000}}) {
    const Vec inp = randn(n, 30, 3.0), dout = randn(n, 31);
    check_float_matches_double([&]<typename F>() {
      const auto x = cast<F>(inp);
      std::vector<F> out(n), dinp(n);
      k::gelu_forward(out.data(), x.data(), n);
      k::gelu_backward(dinp.data(), x.data(), cast<F>(dout).data(), n);
      return Outputs<F>{{"out", out}, {"dinp", dinp}};
    });
  }
}

TEST_CASE("attention: fp32 matches fp64", "[kernels]") {
  for (const auto [B, T, C, NH] : {std::array{2, 7, 12, 3}, std::array{2, 64, 128, 4}}) {
    const Vec inp = randn(std::size_t(B) * T * 3 * C, 40), dout = randn(std::size_t(B) * T * C, 41);
    check_float_matches_double([&]<typename F>() {
      const auto x = cast<F>(inp);
      std::vector<F> out(dout.size()), att(std::size_t(B) * NH * T * T), dinp(inp.size());
      k::attention_forward(out.data(), att.data(), x.data(), B, T, C, NH);
      k::attention_backward(dinp.data(), cast<F>(dout).data(), x.data(), att.data(), B, T, C, NH);
      return Outputs<F>{{"out", out}, {"att", att}, {"dinp", dinp}};
    });
  }
}

TEST_CASE("classifier: fp32 matches fp64", "[kernels]") {
  for (const auto [N, V, Vp] : {std::array{5, 7, 8}, std::array{64, 1000, 1024}}) {
    const Vec logits = randn(std::size_t(N) * Vp, 50, 4.0);
    const auto targets = random_ids(N, V, 51);
    check_float_matches_double([&]<typename F>() {
      std::vector<F> z = cast<F>(logits), losses(N);
      k::classifier_forward_backward(z.data(), losses.data(), targets.data(), N, V, Vp, F(1) / F(N),
                                     true);
      return Outputs<F>{{"losses", losses}, {"dlogits", z}};
    });
  }
}

TEST_CASE("layernorm normalises each row before the affine", "[kernels]") {
  const int N = 7, C = 12;
  const Vec inp = randn(std::size_t(N) * C, 60, 3.0);
  Vec out(inp.size()), mean(N), rstd(N), ones(C, 1.0), zeros(C, 0.0);
  k::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), ones.data(), zeros.data(),
                       N, C);
  Vec row_mean(N), row_var(N), expected_var(N), naive_mean(N), naive_rstd(N);
  for (int n = 0; n < N; ++n) {
    double mi = 0, vi = 0, mo = 0, vo = 0;
    for (int c = 0; c < C; ++c) mi += inp[n * C + c] / C, mo += out[n * C + c] / C;
    for (int c = 0; c < C; ++c) {
      vi += (inp[n * C + c] - mi) * (inp[n * C + c] - mi) / C;  // biased, as PyTorch
      vo += (out[n * C + c] - mo) * (out[n * C + c] - mo) / C;
    }
    row_mean[n] = mo, row_var[n] = vo, naive_mean[n] = mi;
    naive_rstd[n] = 1.0 / std::sqrt(vi + 1e-5);
    expected_var[n] = vi / (vi + 1e-5);  // eps makes the variance slightly below 1
  }
  CHECK(relative_error(row_mean, Vec(N, 0.0)) < kDoubleTol);  // zero reference: absolute norm
  CHECK(relative_error(row_var, expected_var) < kDoubleTol);
  CHECK(relative_error(mean, naive_mean) < kDoubleTol);
  CHECK(relative_error(rstd, naive_rstd) < kDoubleTol);
}

TEST_CASE("residual_layernorm_forward equals add then layernorm_forward", "[kernels]") {
  const int N = 9, C = 20;
  const auto a = cast<float>(randn(std::size_t(N) * C, 70)), b = cast<float>(randn(a.size(), 71));
  const auto w = cast<float>(randn(C, 72)), bias = cast<float>(randn(C, 73));
  std::vector<float> res(a.size()), out(a.size()), mean(N), rstd(N);
  k::residual_layernorm_forward(res.data(), out.data(), mean.data(), rstd.data(), a.data(),
                                b.data(), w.data(), bias.data(), N, C);
  std::vector<float> sum(a.size()), out2(a.size()), mean2(N), rstd2(N);
  for (std::size_t i = 0; i < a.size(); ++i) sum[i] = a[i] + b[i];
  k::layernorm_forward(out2.data(), mean2.data(), rstd2.data(), sum.data(), w.data(), bias.data(),
                       N, C);
  // Same fp32 operations in the same order: equal up to (here: exactly) round-off.
  CHECK(relative_error(res, sum) == 0.0);
  CHECK(relative_error(out, out2) < 1e-7);
  CHECK(relative_error(mean, mean2) < 1e-7);
  CHECK(relative_error(rstd, rstd2) < 1e-7);
}

TEST_CASE("attention probabilities are causal and sum to one", "[kernels]") {
  const int B = 2, T = 9, C = 12, NH = 3;
  const auto inp = cast<float>(randn(std::size_t(B) * T * 3 * C, 80, 2.0));
  std::vector<float> out(std::size_t(B) * T * C), att(std::size_t(B) * NH * T * T, -1.0f);
  k::attention_forward(out.data(), att.data(), inp.data(), B, T, C, NH);
  Vec row_sums;
  for (int row = 0; row < B * NH * T; ++row) {
    const int t = row % T;
    double s = 0.0;
    for (int t2 = 0; t2 < T; ++t2) s += att[std::size_t(row) * T + t2];
    row_sums.push_back(s);
    for (int t2 = t + 1; t2 < T; ++t2) REQUIRE(att[std::size_t(row) * T + t2] == 0.0f);
  }
  CHECK(relative_error(row_sums, Vec(row_sums.size(), 1.0)) < 1e-6);  // fp32 sum of <= 9 terms
}

TEST_CASE("classifier loss is log-sum-exp minus the target logit", "[kernels]") {
  const int N = 6, V = 10, Vp = 12;
  const Vec logits = randn(std::size_t(N) * Vp, 90, 3.0);
  const auto targets = random_ids(N, V, 91);
  Vec naive(N);
  for (int n = 0; n < N; ++n) {
    double s = 0.0;
    for (int i = 0; i < V; ++i) s += std::exp(logits[n * Vp + i]);
    naive[n] = std::log(s) - logits[n * Vp + targets[n]];
  }
  SECTION("fp64, and shifted by 1000 where a naive exp would overflow") {
    for (const double shift : {0.0, 1000.0}) {
      Vec z = logits, losses(N);
      for (auto& x : z) x += shift;
      k::classifier_forward_backward(z.data(), losses.data(), targets.data(), N, V, Vp, 1.0, true);
      CHECK(relative_error(losses, naive) < kDoubleTol);
      for (int n = 0; n < N; ++n) {  // softmax - onehot sums to zero over the real vocab
        double s = 0.0;
        for (int i = 0; i < V; ++i) s += z[n * Vp + i];
        CHECK(std::abs(s) < kDoubleTol);
      }
    }
  }
  SECTION("fp32, forward only leaves the logits untouched") {
    std::vector<float> z = cast<float>(logits), losses(N);
    k::classifier_forward_backward(z.data(), losses.data(), targets.data(), N, V, Vp, 1.0f, false);
    CHECK(relative_error(losses, naive) < kFloatTol);
    CHECK(relative_error(z, cast<float>(logits)) == 0.0);
  }
}

TEST_CASE("matmul_backward skips a null dinp and dbias", "[kernels]") {
  const int N = 4, C = 5, OC = 3;
  const Vec inp = randn(N * C, 100), w = randn(OC * C, 101), dout = randn(N * OC, 102);
  Vec dinp(N * C), dw_full(OC * C), db(OC), dw_only(OC * C);
  k::matmul_backward(dinp.data(), dw_full.data(), db.data(), dout.data(), inp.data(), w.data(), N,
                     C, OC);
  k::matmul_backward<double>(nullptr, dw_only.data(), nullptr, dout.data(), inp.data(), w.data(), N,
                             C, OC);
  CHECK(relative_error(dw_only, dw_full) == 0.0);
}

TEST_CASE("adamw step matches hand-computed values", "[kernels]") {
  const float lr = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  // References use the betas as fp32 holds them: 0.999f is 0.99900001287..., so 1 - beta2 is
  // 1.3e-5 relative away from 0.001 before the kernel does anything. Tolerance 1e-6: a dozen
  // fp32 roundings per value.
  const double B1 = b1, B2 = b2;
  // Step 1: mhat = g and vhat = g^2 exactly, so the step is lr * (sign(g) + wd * p).
  std::vector<float> p{1.0f, -2.0f, 0.5f}, g{0.5f, 0.25f, -4.0f}, m(3, 0.0f), v(3, 0.0f);
  pptrain::kernels::AdamwStep step{lr, b1, b2, eps, 1, 1.0f};
  SECTION("without weight decay") {
    k::adamw_update(p.data(), g.data(), m.data(), v.data(), 3, step, 0.0f);
    CHECK(relative_error(p, std::vector<double>{0.9, -2.1, 0.6}) < 1e-6);
    const double gsq[3] = {0.25, 0.0625, 16.0};
    CHECK(relative_error(m, std::vector<double>{(1 - B1) * 0.5, (1 - B1) * 0.25, (1 - B1) * -4}) <
          1e-6);
    CHECK(relative_error(v, std::vector<double>{(1 - B2) * gsq[0], (1 - B2) * gsq[1],
                                                (1 - B2) * gsq[2]}) < 1e-6);
    // Step 2 with g = 1 everywhere: m = b1 m + (1 - b1), v = b2 v + (1 - b2), bias-corrected
    // by 1 - b1^2 and 1 - b2^2.
    std::vector<float> ones(3, 1.0f);
    const std::vector<double> p1(p.begin(), p.end()), m1(m.begin(), m.end()),
        v1(v.begin(), v.end());
    step.t = 2;
    k::adamw_update(p.data(), ones.data(), m.data(), v.data(), 3, step, 0.0f);
    std::vector<double> expected(3);
    for (int i = 0; i < 3; ++i) {
      const double mi = B1 * m1[i] + (1 - B1), vi = B2 * v1[i] + (1 - B2);
      expected[i] = p1[i] - 0.1 * (mi / (1 - B1 * B1)) / (std::sqrt(vi / (1 - B2 * B2)) + 1e-8);
    }
    CHECK(relative_error(p, expected) < 1e-6);
  }
  SECTION("with decoupled weight decay 0.1") {
    k::adamw_update(p.data(), g.data(), m.data(), v.data(), 3, step, 0.1f);
    // p - 0.1 * (sign(g) + 0.1 * p)
    CHECK(relative_error(p, std::vector<double>{0.89, -2.08, 0.595}) < 1e-6);
  }
  SECTION("grad_scale is the same as scaling the gradients first, bitwise") {
    // 0.3 is not a power of two, so each g * 0.3 is rounded: the scaled gradient stored in
    // fp32, as clipping by a separate pass would have left it.
    std::vector<float> scaled(g), p2(p), m2(m), v2(v);
    for (float& x : scaled) x *= 0.3f;
    k::adamw_update(p2.data(), scaled.data(), m2.data(), v2.data(), 3, step, 0.1f);
    step.grad_scale = 0.3f;
    k::adamw_update(p.data(), g.data(), m.data(), v.data(), 3, step, 0.1f);
    CHECK(p == p2);
    CHECK(m == m2);
    CHECK(v == v2);
    CHECK(std::abs(m[2] - (1.0f - b1) * -4.0f * 0.3f) < 1e-6f);  // the scale reached m
  }
}

TEST_CASE("sum_of_squares", "[kernels]") {
  const std::size_t n = 300000;  // several summation chunks
  std::vector<float> x(n);
  double expected = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    expected += x[i] * x[i];
  }
  CHECK(k::sum_of_squares(x.data(), n) == expected);  // small integers: exact in double
  CHECK(k::sum_of_squares(x.data(), 0) == 0.0);
}

// DESIGN.md 6a: two runs on one layout are bitwise identical. The reductions over rows are
// written so that even the thread count does not change a bit.
TEST_CASE("backward reductions do not depend on the thread count", "[kernels]") {
  const int B = 4, T = 64, C = 160, Vp = 11, N = B * T;
  const auto ids = random_ids(N, Vp, 110);
  const auto dout = cast<float>(randn(std::size_t(N) * C, 111));
  const auto inp = cast<float>(randn(dout.size(), 112)), w = cast<float>(randn(C, 113));
  const auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> dwte(std::size_t(Vp) * C), dwpe(std::size_t(T) * C), mean(N), rstd(N),
        out(dout.size()), dinp(dout.size()), dw(C), db(C), zeros(C);
    k::encoder_backward(dwte.data(), dwpe.data(), dout.data(), ids.data(), B, T, C);
    k::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), zeros.data(),
                         N, C);
    k::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                          mean.data(), rstd.data(), N, C);
    omp_set_num_threads(saved);
    return std::vector<std::vector<float>>{dwte, dwpe, dinp, dw, db};
  };
  CHECK(run(1) == run(4));
}
