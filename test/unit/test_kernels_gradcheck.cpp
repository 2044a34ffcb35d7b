// Finite-difference gradient checks, in double precision, for every CPU kernel with a backward.
// Each check: random inputs, a random upstream gradient g, loss L = sum(g * forward(inputs)),
// and the analytic gradient of L from the backward compared with central differences.
//
// Tolerance: kGradTol = 1e-6 on the norm-wise relative error. With h = 1e-6 in double the
// central difference has truncation error ~h^2 |f'''| / 6 ~ 1e-13 and round-off error
// ~1e-16 |L| / h ~ 1e-9 for the |L| ~ 10 used here, i.e. ~1e-8 relative to gradients of
// order 0.1..1; a wrong backward (a dropped term, a wrong index) is off by O(1e-2..1).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/classifier.h"
#include "kernels/encoder.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "support/tolerance.h"
#include "support/random_inputs.h"

namespace {

namespace k = pptrain::kernels::cpu;
using pptrain::test::relative_error;
using Vec = std::vector<double>;

constexpr double kGradTol = 1e-6;  // see the top of the file
constexpr double kStep = 1e-6;     // central-difference step h
// Backward into pre-filled buffers minus the pre-fill must equal backward into zeros; the only
// difference is the round-off of adding and removing O(1) values.
constexpr double kAccumulateTol = 1e-12;

using pptrain::test::randn;
using pptrain::test::random_ids;

double dot(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// A differentiable input of the op under test, named for failure messages.
struct Input {
  std::string name;
  Vec* value;
};

// Central differences of loss() w.r.t. every entry of x, which is perturbed in place and
// restored exactly.
Vec numeric_gradient(const std::function<double()>& loss, Vec& x) {
  Vec grad(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + kStep;
    const double plus = loss();
    x[i] = saved - kStep;
    const double minus = loss();
    x[i] = saved;
    grad[i] = (plus - minus) / (2.0 * kStep);
  }
  return grad;
}

// The whole check for one op at one shape. backward(grads) must ACCUMULATE dL/d inputs[i]
// into grads[i] (sized like inputs[i]). It runs twice: into zeros, compared with central
// differences, and into random pre-filled buffers, which checks the += contract of every op.
void gradcheck(const std::vector<Input>& inputs, const std::function<double()>& loss,
               const std::function<void(std::vector<Vec>&)>& backward) {
  std::vector<Vec> grads, prefill, accumulated;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    grads.emplace_back(inputs[i].value->size(), 0.0);
    prefill.push_back(randn(inputs[i].value->size(), 9000 + i));
  }
  backward(grads);
  accumulated = prefill;
  backward(accumulated);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    INFO("gradient w.r.t. " << inputs[i].name);
    const Vec numeric = numeric_gradient(loss, *inputs[i].value);
    CHECK(relative_error(grads[i], numeric) < kGradTol);
    for (std::size_t j = 0; j < accumulated[i].size(); ++j) accumulated[i][j] -= prefill[i][j];
    CHECK(relative_error(accumulated[i], grads[i]) < kAccumulateTol);
  }
}

}  // namespace

TEST_CASE("encoder backward matches central differences", "[kernels][gradcheck]") {
  struct Shape {
    int B, T, C, Vp;
  };
  std::uint64_t seed = 100;
  for (const auto [B, T, C, Vp] : {Shape{1, 1, 3, 4}, Shape{2, 5, 6, 7}, Shape{3, 7, 12, 5}}) {
    INFO("B=" << B << " T=" << T << " C=" << C << " Vp=" << Vp);
    const int maxT = T + 2;  // wpe rows past T must get exactly no gradient
    // Few ids for many tokens: repeats exercise the scatter-add.
    const std::vector<int> tokens = random_ids(std::size_t(B) * T, Vp, ++seed);
    Vec wte = randn(std::size_t(Vp) * C, ++seed), wpe = randn(std::size_t(maxT) * C, ++seed);
    const Vec g = randn(std::size_t(B) * T * C, ++seed);
    const auto loss = [&] {
      Vec out(g.size());
      k::encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
      return dot(g, out);
    };
    gradcheck({{"wte", &wte}, {"wpe", &wpe}}, loss, [&](std::vector<Vec>& d) {
      k::encoder_backward(d[0].data(), d[1].data(), g.data(), tokens.data(), B, T, C);
    });
  }
}

TEST_CASE("layernorm backward matches central differences", "[kernels][gradcheck]") {
  struct Shape {
    int N, C;
  };
  std::uint64_t seed = 200;
  for (const auto [N, C] : {Shape{1, 3}, Shape{5, 6}, Shape{21, 12}, Shape{3, 7}}) {
    INFO("N=" << N << " C=" << C);
    Vec inp = randn(std::size_t(N) * C, ++seed, 2.0);
    for (auto& x : inp) x += 0.5;  // a non-zero mean, so the mean subtraction matters
    Vec weight = randn(C, ++seed), bias = randn(C, ++seed);
    const Vec g = randn(inp.size(), ++seed);
    Vec out(inp.size()), mean(N), rstd(N);
    const auto forward = [&] {
      k::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                           bias.data(), N, C);
    };
    const auto loss = [&] { return forward(), dot(g, out); };
    gradcheck({{"inp", &inp}, {"weight", &weight}, {"bias", &bias}}, loss,
              [&](std::vector<Vec>& d) {
                forward();  // mean and rstd at the unperturbed point
                k::layernorm_backward(d[0].data(), d[1].data(), d[2].data(), g.data(), inp.data(),
                                      weight.data(), mean.data(), rstd.data(), N, C);
              });
  }
}

TEST_CASE("matmul backward matches central differences", "[kernels][gradcheck]") {
  struct Shape {
    int N, C, OC;
  };
  std::uint64_t seed = 300;
  for (const bool with_bias : {true, false}) {
    for (const auto [N, C, OC] :
         {Shape{1, 3, 1}, Shape{5, 6, 7}, Shape{21, 12, 5}, Shape{7, 12, 36}}) {
      INFO("bias=" << with_bias << " N=" << N << " C=" << C << " OC=" << OC);
      Vec inp = randn(std::size_t(N) * C, ++seed), weight = randn(std::size_t(OC) * C, ++seed);
      Vec bias = randn(OC, ++seed);
      const Vec g = randn(std::size_t(N) * OC, ++seed);
      const double* b = with_bias ? bias.data() : nullptr;
      const auto loss = [&] {
        Vec out(g.size());
        k::matmul_forward(out.data(), inp.data(), weight.data(), b, N, C, OC);
        return dot(g, out);
      };
      std::vector<Input> inputs{{"inp", &inp}, {"weight", &weight}};
      if (with_bias) inputs.push_back({"bias", &bias});
      gradcheck(inputs, loss, [&](std::vector<Vec>& d) {
        k::matmul_backward(d[0].data(), d[1].data(), with_bias ? d[2].data() : nullptr, g.data(),
                           inp.data(), weight.data(), N, C, OC);
      });
    }
  }
}

TEST_CASE("gelu backward matches central differences", "[kernels][gradcheck]") {
  std::uint64_t seed = 400;
  for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{300}}) {
    INFO("n=" << n);
    Vec inp = randn(n, ++seed, 2.5);  // wide enough to reach both saturated tails
    const Vec g = randn(n, ++seed);
    const auto loss = [&] {
      Vec out(n);
      k::gelu_forward(out.data(), inp.data(), n);
      return dot(g, out);
    };
    gradcheck({{"inp", &inp}}, loss,
              [&](std::vector<Vec>& d) { k::gelu_backward(d[0].data(), inp.data(), g.data(), n); });
  }
}

TEST_CASE("attention backward matches central differences", "[kernels][gradcheck]") {
  struct Shape {
    int B, T, C, NH;
  };
  std::uint64_t seed = 500;
  for (const auto [B, T, C, NH] : {Shape{1, 1, 3, 1}, Shape{2, 5, 6, 2}, Shape{3, 7, 12, 3},
                                   Shape{1, 7, 6, 3}, Shape{2, 5, 12, 1}}) {
    INFO("B=" << B << " T=" << T << " C=" << C << " NH=" << NH);
    Vec inp = randn(std::size_t(B) * T * 3 * C, ++seed);
    const Vec g = randn(std::size_t(B) * T * C, ++seed);
    Vec out(g.size()), att(std::size_t(B) * NH * T * T);
    const auto forward = [&] {
      k::attention_forward(out.data(), att.data(), inp.data(), B, T, C, NH);
    };
    const auto loss = [&] { return forward(), dot(g, out); };
    gradcheck({{"inp (q|k|v)", &inp}}, loss, [&](std::vector<Vec>& d) {
      forward();  // att at the unperturbed point
      k::attention_backward(d[0].data(), g.data(), inp.data(), att.data(), B, T, C, NH);
    });
  }
}

// The classifier's "backward" is the dlogits it writes in place; with a uniform dloss_scale s
// it must equal the gradient of L = sum_n s * loss_n.
TEST_CASE("classifier dlogits match central differences", "[kernels][gradcheck]") {
  struct Shape {
    int N, V, Vp;
  };
  std::uint64_t seed = 600;
  for (const auto [N, V, Vp] : {Shape{1, 7, 8}, Shape{5, 7, 8}, Shape{6, 7, 7}, Shape{21, 5, 8}}) {
    INFO("N=" << N << " V=" << V << " Vp=" << Vp);
    Vec logits = randn(std::size_t(N) * Vp, ++seed, 3.0);
    for (int n = 0; n < N; ++n) {
      for (int i = V; i < Vp; ++i) logits[std::size_t(n) * Vp + i] = 50.0;  // must be ignored
    }
    const std::vector<int> targets = random_ids(N, V, ++seed);
    const double scale = 1.0 / N;  // the mean over tokens, as training uses it
    const auto loss = [&] {
      Vec z = logits, losses(N);
      k::classifier_forward_backward(z.data(), losses.data(), targets.data(), N, V, Vp, scale,
                                     false);
      double total = 0.0;
      for (const double l : losses) total += scale * l;
      return total;
    };
    Vec dlogits;  // the last in-place result, inspected below
    gradcheck({{"logits", &logits}}, loss, [&](std::vector<Vec>& d) {
      dlogits = logits;
      Vec losses(N);
      k::classifier_forward_backward(dlogits.data(), losses.data(), targets.data(), N, V, Vp, scale,
                                     true);
      for (std::size_t i = 0; i < dlogits.size(); ++i) d[0][i] += dlogits[i];
    });
    for (int n = 0; n < N; ++n) {
      for (int i = V; i < Vp; ++i) REQUIRE(dlogits[std::size_t(n) * Vp + i] == 0.0);
    }
  }
}
