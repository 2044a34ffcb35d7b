// [cuda] AdamW against the CPU twin (kernels/adamw.h): the fp32 update, and the variant that
// also writes a stochastically rounded bf16 copy (each word is one of the two bf16 neighbours
// of the fp32 master; same seed, same bits).
#include <cstring>

#include "cuda_test_util.h"
#include "kernels/adamw.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

struct State {
  std::vector<float> params, grads, m, v;
};

State make_state(std::size_t n) {
  State s{randn(n, 800), randn(n, 801, 0.1), randn(n, 802, 0.01), randn(n, 803, 0.03)};
  for (auto& x : s.v) x = x * x;  // second moments are non-negative
  return s;
}

// lr 0.1 makes the update large against the fp32 spacing of the parameters (~1e-7), so
// comparing updates (after - before) at 1e-5 is meaningful.
constexpr float kLr = 0.1f, kBeta1 = 0.9f, kBeta2 = 0.95f, kEps = 1e-8f, kWd = 0.1f;
constexpr int kStep = 3;

struct DeviceState {
  explicit DeviceState(const State& s)
      : params(DeviceArray::from(s.params, DType::F32, pptrain::MemCategory::Params)),
        grads(DeviceArray::from(s.grads, DType::F32, pptrain::MemCategory::Grads)),
        m(DeviceArray::from(s.m, DType::F32, pptrain::MemCategory::Optimizer)),
        v(DeviceArray::from(s.v, DType::F32, pptrain::MemCategory::Optimizer)) {}
  DeviceArray params, grads, m, v;
};

std::vector<std::uint16_t> download_bits(kc::DeviceBuffer& buf, std::size_t n) {
  kc::synchronize({});
  std::vector<std::uint16_t> bits(n);
  buf.copy_to_host(bits.data(), n * sizeof(std::uint16_t));
  return bits;
}

}  // namespace

TEST_CASE("CUDA AdamW matches the CPU twin", "[cuda]") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, (std::size_t{1} << 21) + 5}) {
    INFO("n=" << n);
    const State s = make_state(n);
    State ref = s;
    cpu::adamw_update(ref.params.data(), ref.grads.data(), ref.m.data(), ref.v.data(), n, kLr,
                      kBeta1, kBeta2, kEps, kWd, kStep);
    DeviceState d(s);
    kc::adamw_update(d.params.f32(), d.grads.f32(), d.m.f32(), d.v.f32(), n, kLr, kBeta1, kBeta2,
                     kEps, kWd, kStep, {});
    check_accumulated("adamw params update", d.params.to_host(), s.params,
                      minus(ref.params, s.params), kF32Tol);
    check_close("adamw m", d.m.to_host(), ref.m, kF32Tol);
    check_close("adamw v", d.v.to_host(), ref.v, kF32Tol);
  }
}

TEST_CASE("CUDA AdamW with a bf16 copy rounds stochastically and reproducibly", "[cuda]") {
  const std::size_t n = (std::size_t{1} << 20) + 7;
  const State s = make_state(n);
  State ref = s;
  cpu::adamw_update(ref.params.data(), ref.grads.data(), ref.m.data(), ref.v.data(), n, kLr,
                    kBeta1, kBeta2, kEps, kWd, kStep);

  std::vector<std::vector<std::uint16_t>> runs;
  for (const std::uint64_t seed : {42ull, 42ull, 43ull}) {
    DeviceState d(s);
    kc::DeviceBuffer bf16(device_tracker(), pptrain::MemCategory::Params, n * 2);
    bf16.poison();
    kc::adamw_update_bf16(d.params.f32(), bf16.as<std::uint16_t>(), d.grads.f32(), d.m.f32(),
                          d.v.f32(), n, kLr, kBeta1, kBeta2, kEps, kWd, kStep, seed, {});
    const auto master = d.params.to_host();
    check_accumulated("adamw(bf16) params update", master, s.params, minus(ref.params, s.params),
                      kF32Tol);
    check_close("adamw(bf16) m", d.m.to_host(), ref.m, kF32Tol);
    check_close("adamw(bf16) v", d.v.to_host(), ref.v, kF32Tol);
    runs.push_back(download_bits(bf16, n));
    // Each bf16 word is the master truncated to 16 bits, or the next one up in magnitude
    // (never NaN: the poison 0xFFFF would be caught here).
    std::size_t bad = 0, rounded_up = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, &master[i], 4);
      const std::uint16_t down = static_cast<std::uint16_t>(bits >> 16);
      const std::uint16_t got = runs.back()[i];
      if (got == down + 1 && (bits & 0xFFFFu) != 0) {
        ++rounded_up;
      } else if (got != down) {
        ++bad;
      }
    }
    CHECK(bad == 0);
    CHECK(rounded_up > n / 4);  // about half round up for random low bits
    CHECK(rounded_up < 3 * n / 4);
  }
  CHECK(runs[0] == runs[1]);  // same seed: bitwise the same
  CHECK(runs[0] != runs[2]);  // another seed: other random bits
}
