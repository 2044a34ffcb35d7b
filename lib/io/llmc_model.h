// llm.c model files (karpathy/llm.c train_gpt2.py write_model, train_gpt2.c):
//   header: 256 little-endian int32: [0] magic 20240326, [1] version (3 = fp32 parameters,
//           5 = bf16 parameters), [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp, rest 0
//   then the 16 tensors back to back, the per-layer ones concatenated over the L layers:
//     wte (Vp,C) wpe (maxT,C) ln1w (L,C) ln1b (L,C) qkvw (L,3C,C) qkvb (L,3C)
//     attprojw (L,C,C) attprojb (L,C) ln2w (L,C) ln2b (L,C) fcw (L,4C,C) fcb (L,4C)
//     fcprojw (L,C,4C) fcprojb (L,C) lnfw (C) lnfb (C)
// The names and shapes are the parameter table's, so no tensor is reshaped or transposed.
#pragma once

#include <cstdint>
#include <string>

#include "io/model_files.h"

namespace pptrain {

inline constexpr std::int32_t kLlmcModelMagic = 20240326;
inline constexpr int kLlmcVersionFp32 = 3;
inline constexpr int kLlmcVersionBf16 = 5;
inline constexpr std::size_t kLlmcHeaderBytes = 256 * sizeof(std::int32_t);

// Checks the magic, the version, the sizes (positive, C % NH == 0, Vp >= V) and that the
// file holds exactly the header and the parameters; bf16 values become fp32 exactly.
ModelFile read_llmc_model(const std::string& path);

// Writes version 3 (fp32) or 5 (bf16, rounded to nearest even) to path.tmp and renames it
// over path. `tensors` must hold every parameter of `shape`; others are ignored.
void write_llmc_model(const std::string& path, const GPT2Shape& shape, const NamedTensors& tensors,
                      int version);

// The bytes the parameters take in a file of this version (without the header).
std::uint64_t llmc_param_bytes(const GPT2Shape& shape, int version);

// fp32 -> bf16 rounding to nearest, ties to even (values past bf16's largest finite become
// infinite, as IEEE rounding says). A NaN stays a NaN: its payload's top 7 bits are kept,
// and if those are all zero the quiet bit is set, so that it cannot turn into an infinity.
std::uint16_t fp32_to_bf16(float value);
// Exact: a bf16 is the top half of an fp32.
float bf16_to_fp32(std::uint16_t bits);

}  // namespace pptrain
