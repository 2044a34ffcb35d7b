// The kernel benchmark's tensors, row timing and alternatives summary (cuda_bench_rows.h).
#include "apps/bench/cuda_bench_rows.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/rng.h"
#include "kernels/cuda/bf16_host.h"
#include "kernels/cuda/cuda_check.cuh"
#include "metrics/throughput.h"

namespace pptrain::bench {

MemoryTracker& tracker() {
  static MemoryTracker t;
  return t;
}

Tensor::Tensor(std::size_t count, DType type)
    : buf(tracker(), MemCategory::Activations, count * kc::dtype_size(type)), n(count), dt(type) {}

Tensor& Tensor::random(std::uint64_t seed, double scale, bool positive) {
  const std::size_t chunk = std::min<std::size_t>(n, 1u << 20), es = kc::dtype_size(dt);
  Rng rng(stream_key(seed, "bench_cuda"));
  std::vector<float> vals(chunk);
  for (auto& v : vals)
    v = static_cast<float>(positive ? std::fabs(scale * rng.normal()) : scale * rng.normal());
  std::vector<std::uint16_t> bits(dt == DType::BF16 ? chunk : 0);
  for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = kc::float_to_bf16_bits(vals[i]);
  const void* src = dt == DType::BF16 ? static_cast<const void*>(bits.data()) : vals.data();
  for (std::size_t off = 0; off < n; off += chunk) {
    const std::size_t k = std::min(chunk, n - off);
    CUDA_CHECK(
        cudaMemcpy(static_cast<char*>(p()) + off * es, src, k * es, cudaMemcpyHostToDevice));
  }
  return *this;
}

Tensor& Tensor::poisoned() {
  buf.poison();
  return *this;
}

std::size_t Tensor::count_nonfinite() const {
  kc::synchronize({});
  std::vector<float> host(dt == DType::F32 ? n : 0);
  std::vector<std::uint16_t> bits(dt == DType::BF16 ? n : 0);
  if (dt == DType::F32)
    buf.copy_to_host(host.data(), n * 4);
  else
    buf.copy_to_host(bits.data(), n * 2);
  std::size_t bad = 0;
  for (const float v : host) bad += !std::isfinite(v);
  for (const auto b : bits) bad += !std::isfinite(kc::bf16_bits_to_float(b));
  return bad;
}

double time_row(const Row& row, const Options& o) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  const int k = row.prepare ? 1 : o.iters;  // an in-place kernel is restored before each launch
  std::vector<double> samples;
  for (int s = 0; s < o.warmup + o.reps; ++s) {
    if (row.prepare) row.prepare();
    CUDA_CHECK(cudaEventRecord(start, nullptr));
    for (int i = 0; i < k; ++i) row.launch();
    CUDA_CHECK(cudaEventRecord(stop, nullptr));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (s >= o.warmup) samples.push_back(static_cast<double>(ms) / k);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void print_alternatives(DType dt, const std::vector<Row>& rows, const std::vector<double>& measured,
                        double step_ms, std::int64_t tokens, double flops_per_token) {
  std::map<int, int> best;  // base row -> its fastest alternative
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int base = rows[i].alternative_of;
    if (base < 0 || measured[i] < 0.0 || measured[base] < 0.0) continue;
    if (measured[i] >= 0.99 * measured[base]) continue;
    if (best.count(base) == 0 || measured[i] < measured[best[base]]) best[base] = static_cast<int>(i);
  }
  fmt::print("\nfaster alternatives (over 1%, not in the step above):{}\n", best.empty() ? " none" : "");
  double with_them = step_ms;
  for (const auto& [base, alt] : best) {
    const double saved = rows[base].calls * (measured[base] - measured[alt]);
    with_them -= saved;
    const std::string& name = rows[alt].name;
    fmt::print("  {}: {:.4f} -> {:.4f} ms, {:.3f} ms/step\n", name.substr(name.find_first_not_of(' ')),
               measured[base], measured[alt], saved);
  }
  const double tps = tokens_per_second(tokens, with_them * 1e-3);
  fmt::print("ALTERNATIVES_SUMMARY dtype={} step_ms={:.3f} tokens_per_s={:.0f} mfu_pct={:.2f} rows={}\n",
             kc::dtype_name(dt), with_them, tps, 100.0 * mfu(tps, flops_per_token), best.size());
}

}  // namespace pptrain::bench
