// The one place that defines throughput metrics, so a log line, metrics.jsonl and the
// benchmark tables agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pptrain {

// Tokens processed (global batch: dp x m x B x T) per wall-clock second.
double tokens_per_second(std::int64_t tokens, double seconds);

// Model FLOPs per token of one training step (forward + backward), PaLM's count (Chowdhery et
// al. 2022, appendix B): 6 * n_params for the matmuls with the weights, plus 12 * L * C * T
// for attention's q.k and p.v products (not halved for causality, as PaLM counts them).
// n_params counts every unique parameter (the tied wte once, at its padded size), as
// GPT2Shape::num_parameters() does; scripts/torch_reference.py repeats this formula.
double model_flops_per_token(double n_params, int n_layer, int channels, int seq_len);

// Dense bf16 peak of an NVIDIA H100/H200 SXM (datasheet, without sparsity): the one
// denominator of every MFU this project prints, whatever the precision that ran.
inline constexpr double kH200Bf16PeakFlops = 989e12;

// Model FLOPs utilisation: tokens/s * model FLOPs per token / peak FLOP/s.
double mfu(double tokens_per_second, double flops_per_token,
           double peak_flops = kH200Bf16PeakFlops);

// The median of timings (the upper one of an even count): every "median ms" the project
// prints or plans from. Throws for none.
double median(std::vector<double> values);

// "1h02m", "3m07s", "12s": for ETAs and durations.
std::string format_duration(double seconds);

}  // namespace pptrain
