// [cuda] AdamW against the CPU twin (kernels/adamw.h): the fp32 update with and without a clip
// factor, the bf16 working copy with stochastic rounding (each word is one of the two bf16
// neighbours of the fp32 master; same seed, same bits), and a stage's many tensors in a few
// launches giving bitwise what one call per tensor gives, gaps between tensors untouched.
#include <cstring>

#include "cuda_test_util.h"
#include "kernels/adamw.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;
using pptrain::kernels::AdamwStep;

struct State {
  std::vector<float> params, grads, m, v;
};

State make_state(std::size_t n) {
  State s{randn(n, 800), randn(n, 801, 0.1), randn(n, 802, 0.01), randn(n, 803, 0.03)};
  for (auto& x : s.v) x = x * x;  // second moments are non-negative
  return s;
}

// lr 0.1 makes the update large against the fp32 spacing of the parameters (~1e-7), so
// comparing updates (after - before) at 1e-5 is meaningful. Step 3: the bias corrections and
// the clip factor both change the update (at step 1 it is sign(g) whatever the scale).
constexpr float kWd = 0.1f;
constexpr AdamwStep kStep{0.1f, 0.9f, 0.95f, 1e-8f, 3, 1.0f};

struct DeviceState {
  explicit DeviceState(const State& s)
      : params(DeviceArray::from(s.params, DType::F32, pptrain::MemCategory::Params)),
        grads(DeviceArray::from(s.grads, DType::F32, pptrain::MemCategory::Grads)),
        m(DeviceArray::from(s.m, DType::F32, pptrain::MemCategory::Optimizer)),
        v(DeviceArray::from(s.v, DType::F32, pptrain::MemCategory::Optimizer)) {}
  kc::AdamwBuffers buffers(std::uint16_t* bf16 = nullptr) {
    return {params.f32(), bf16, grads.f32(), m.f32(), v.f32()};
  }
  DeviceArray params, grads, m, v;
};

std::vector<std::uint16_t> download_bits(kc::DeviceBuffer& buf, std::size_t n) {
  kc::synchronize({});
  std::vector<std::uint16_t> bits(n);
  buf.copy_to_host(bits.data(), n * sizeof(std::uint16_t));
  return bits;
}

std::vector<kc::AdamwTensor> one_tensor(std::size_t n, std::uint64_t seed = 0) {
  return {kc::AdamwTensor{0, n, kWd, seed}};
}

}  // namespace

TEST_CASE("CUDA AdamW matches the CPU twin", "[cuda]") {
  for (const float scale : {1.0f, 0.3f}) {
    for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, (std::size_t{1} << 21) + 5}) {
      INFO("n=" << n << ", grad_scale " << scale);
      AdamwStep step = kStep;
      step.grad_scale = scale;
      const State s = make_state(n);
      State ref = s;
      cpu::adamw_update(ref.params.data(), ref.grads.data(), ref.m.data(), ref.v.data(), n, step, kWd);
      DeviceState d(s);
      kc::adamw_update(d.buffers(), one_tensor(n), step, {});
      check_accumulated("adamw params update", d.params.to_host(), s.params,
                        minus(ref.params, s.params), kF32Tol);
      check_close("adamw m", d.m.to_host(), ref.m, kF32Tol);
      check_close("adamw v", d.v.to_host(), ref.v, kF32Tol);
      CHECK(d.grads.to_host() == s.grads);  // the clip factor is applied as read, not stored
    }
  }
}

TEST_CASE("CUDA AdamW with a bf16 copy rounds stochastically and reproducibly", "[cuda]") {
  const std::size_t n = (std::size_t{1} << 20) + 7;
  const State s = make_state(n);
  State ref = s;
  cpu::adamw_update(ref.params.data(), ref.grads.data(), ref.m.data(), ref.v.data(), n, kStep, kWd);

  std::vector<std::vector<std::uint16_t>> runs;
  for (const std::uint64_t seed : {42ull, 42ull, 43ull}) {
    DeviceState d(s);
    kc::DeviceBuffer bf16(device_tracker(), pptrain::MemCategory::Params, n * 2);
    bf16.poison();
    kc::adamw_update(d.buffers(bf16.as<std::uint16_t>()), one_tensor(n, seed), kStep, {});
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

TEST_CASE("CUDA AdamW over many tensors equals one call per tensor, bitwise", "[cuda]") {
  // More tensors than one launch takes, of a stage's kinds of sizes (empty, one value, odd,
  // a block's worth and a few blocks), each at a 64-word aligned offset with a gap after it.
  std::vector<kc::AdamwTensor> tensors;
  std::size_t words = 0;
  const std::size_t sizes[] = {768, 1, 0, 4097, 1024, 2305, 7, 1025};
  for (int i = 0; i < 2 * kc::kAdamwTensorsPerLaunch + 5; ++i) {
    const std::size_t n = sizes[i % 8];
    tensors.push_back({words, n, i % 3 == 0 ? 0.0f : kWd, 1000u + static_cast<unsigned>(i)});
    words += (n + 63) / 64 * 64 + 64;
  }
  AdamwStep step = kStep;
  step.grad_scale = 0.7f;
  const State s = make_state(words);
  std::vector<std::vector<float>> results;
  std::vector<std::vector<std::uint16_t>> bits;
  for (const bool batched : {true, false}) {
    DeviceState d(s);
    kc::DeviceBuffer bf16(device_tracker(), pptrain::MemCategory::Params, words * 2);
    bf16.poison();
    if (batched) {
      kc::adamw_update(d.buffers(bf16.as<std::uint16_t>()), tensors, step, {});
    } else {
      for (const kc::AdamwTensor& t : tensors) {
        kc::adamw_update(d.buffers(bf16.as<std::uint16_t>()), {t}, step, {});
      }
    }
    results.push_back(d.params.to_host());
    for (auto* a : {&d.m, &d.v}) {
      const auto h = a->to_host();
      results.back().insert(results.back().end(), h.begin(), h.end());
    }
    bits.push_back(download_bits(bf16, words));
    if (batched) {
      // Each tensor's copy draws its bits by index within the tensor, as the stochastic cast
      // of that tensor alone does (and the emulated build, which is that cast).
      kc::DeviceBuffer cast(device_tracker(), pptrain::MemCategory::Params, words * 2);
      cast.poison();
      for (const kc::AdamwTensor& t : tensors) {
        kc::cast_f32_to_bf16_stochastic(cast.as<std::uint16_t>() + t.offset, d.params.f32() + t.offset,
                                        t.n, t.seed, {});
      }
      CHECK(download_bits(cast, words) == bits.back());
    }
  }
  CHECK(results[0] == results[1]);
  CHECK(bits[0] == bits[1]);

  // Against the twin, tensor by tensor; every word outside the tensors is as it was (the
  // bf16 copy still poisoned there).
  State ref = s;
  std::vector<bool> inside(words, false);
  for (const kc::AdamwTensor& t : tensors) {
    cpu::adamw_update(ref.params.data() + t.offset, ref.grads.data() + t.offset,
                      ref.m.data() + t.offset, ref.v.data() + t.offset, t.n, step, t.weight_decay);
    for (std::size_t i = 0; i < t.n; ++i) inside[t.offset + i] = true;
  }
  const std::vector<float> params(results[0].begin(), results[0].begin() + words);
  check_accumulated("adamw over tensors, params update", params, s.params,
                    minus(ref.params, s.params), kF32Tol);
  std::size_t touched_gaps = 0;
  for (std::size_t w = 0; w < words; ++w) {
    if (!inside[w] && (params[w] != s.params[w] || bits[0][w] != 0xFFFFu)) ++touched_gaps;
  }
  CHECK(touched_gaps == 0);
}
