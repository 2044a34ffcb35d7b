// Host code only (no kernels): compiled by nvcc in the GPU build and, through a generated .cpp
// wrapper, by g++ in the emulated and SIMT builds (kernels/CMakeLists.txt).
#include "kernels/cuda/attention_tuning.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

// Host milliseconds per call of `launch` over `reps` calls after one untimed call.
double ms_per_call(const std::function<void()>& launch, int reps, Stream stream) {
  launch();
  synchronize(stream);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) launch();
  synchronize(stream);
  const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
  return ms.count() / reps;
}

// n values in dt at dst: a fixed pattern in [-1, 1) (not zeros, which flatter tensor cores).
void write_pattern(void* dst, std::size_t n, DType dt, Stream stream) {
  const std::size_t chunk = std::min<std::size_t>(n, std::size_t{1} << 18);
  std::vector<float> f32(dt == DType::F32 ? chunk : 0);
  std::vector<std::uint16_t> bf16(dt == DType::BF16 ? chunk : 0);
  for (std::size_t i = 0; i < chunk; ++i) {
    const float v = static_cast<float>((i * 2654435761u) % 64) / 32.0f - 1.0f;
    if (dt == DType::F32) {
      f32[i] = v;
    } else {
      std::uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      bf16[i] = static_cast<std::uint16_t>(bits >> 16);  // exact: v is a multiple of 1/32
    }
  }
  const void* src = dt == DType::F32 ? static_cast<const void*>(f32.data()) : bf16.data();
  const std::size_t es = dtype_size(dt);
  for (std::size_t off = 0; off < n; off += chunk) {
    copy_async(static_cast<char*>(dst) + off * es, src, std::min(chunk, n - off) * es, stream);
  }
  synchronize(stream);  // the host pattern is freed on return
}

}  // namespace

std::vector<AttentionTiling> attention_forward_tilings() {
  std::vector<AttentionTiling> all;
  for (const int warps : {4, 8}) {
    for (const int row_tiles : {2, 1}) {
      AttentionTiling t;
      t.forward_warps = warps;
      t.forward_row_tiles = row_tiles;
      all.push_back(t);
    }
  }
  return all;
}

std::vector<AttentionTiling> attention_backward_tilings() {
  std::vector<AttentionTiling> all;
  for (const bool hold : {false, true}) {
    for (const int dq_warps : {4, 8}) {
      for (const int dkv_warps : {4, 8}) {
        for (const int queries : {64, 32}) {
          AttentionTiling t;
          t.dq_warps = dq_warps;
          t.dkv_warps = dkv_warps;
          t.dkv_query_rows = queries;
          t.hold_row_fragments = hold;
          all.push_back(t);
        }
      }
    }
  }
  return all;
}

std::string forward_shape_name(const AttentionTiling& t) {
  return fmt::format("{} warps x {} m-tile{}", t.forward_warps, t.forward_row_tiles,
                     t.forward_row_tiles == 1 ? "" : "s");
}

std::string backward_shape_name(const AttentionTiling& t) {
  return fmt::format("dq {} warps, dk/dv {} warps x {} queries{}", t.dq_warps, t.dkv_warps,
                     t.dkv_query_rows, t.hold_row_fragments ? ", fragments held" : "");
}

std::size_t attention_tuning_scratch_bytes(int B, int T, int C, int NH, DType dt) {
  const std::size_t btc = static_cast<std::size_t>(B) * T * C;
  const std::size_t data = 8 * btc * dtype_size(dt);  // inp 3, out 1, dout 1, dinp 3
  return data + static_cast<std::size_t>(B) * NH * T * sizeof(float);
}

AttentionTuning tune_attention(void* scratch, std::size_t scratch_bytes, int B, int T, int C,
                               int NH, DType dt, Stream stream, int reps) {
  checks::attention_shape("tune_attention", B, T, C, NH);
  PPT_CHECK(reps >= 1, "tune_attention: reps {} < 1", reps);
  AttentionTuning result;
  if (dt != DType::BF16 || C / NH > 64 || B == 0 || T == 0) return result;  // one shape
  const std::size_t need = attention_tuning_scratch_bytes(B, T, C, NH, dt);
  PPT_CHECK(scratch != nullptr && scratch_bytes >= need,
            "tune_attention: scratch of {} bytes given, {} needed", scratch_bytes, need);
  const std::size_t btc = static_cast<std::size_t>(B) * T * C, es = dtype_size(dt);
  char* inp = static_cast<char*>(scratch);
  char* out = inp + 3 * btc * es;
  char* dout = out + btc * es;
  char* dinp = dout + btc * es;
  float* lse = reinterpret_cast<float*>(dinp + 3 * btc * es);
  write_pattern(inp, 3 * btc, dt, stream);
  write_pattern(dout, btc, dt, stream);

  bool first = true;
  for (const AttentionTiling& t : attention_forward_tilings()) {
    const double ms = ms_per_call(
        [&] { attention_forward(out, lse, inp, B, T, C, NH, dt, stream, t); }, reps, stream);
    if (first) result.default_forward_ms = ms;
    if (first || ms < result.forward_ms) {
      result.forward_ms = ms;
      result.tiling.forward_warps = t.forward_warps;
      result.tiling.forward_row_tiles = t.forward_row_tiles;
    }
    first = false;
    ++result.shapes_timed;
  }
  // Every forward shape left the same out and lse; the backward overwrites dinp.
  first = true;
  for (const AttentionTiling& t : attention_backward_tilings()) {
    const double ms = ms_per_call(
        [&] {
          attention_backward(dinp, dout, inp, out, lse, B, T, C, NH, dt, stream, false, t);
        },
        reps, stream);
    if (first) result.default_backward_ms = ms;
    if (first || ms < result.backward_ms) {
      result.backward_ms = ms;
      result.tiling.dq_warps = t.dq_warps;
      result.tiling.dkv_warps = t.dkv_warps;
      result.tiling.dkv_query_rows = t.dkv_query_rows;
      result.tiling.hold_row_fragments = t.hold_row_fragments;
    }
    first = false;
    ++result.shapes_timed;
  }
  return result;
}

}  // namespace pptrain::kernels::cuda
