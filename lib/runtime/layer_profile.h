// `pipeline.partition: profile` (DESIGN.md section 7): each layer kind's forward + backward
// time on this rank's device, measured on stand-alone one-layer stage models at the config's
// micro-batch size and recompute, so the partitioner balances what the stages will really
// take, where `flops` sees only the FLOPs (not, say, an attention backward that runs further
// from its peak than the matmuls).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "model/compute_device.h"
#include "model/gpt2_shape.h"

namespace pptrain {

// True when config.pipeline.partition is profile and its layer_costs are not given: the
// trainer and `pptrain plan` measure them (measure_layer_costs) before making a plan.
bool needs_layer_profile(const Config& config);

// Median over `repeats` timed rounds (after one warm-up) of the forward + whole backward of
// the embedding, one block and the LM head, in ms; every block of a GPT-2 costs the same, so
// the result has one entry per model layer: embedding, n_layer blocks, head.
// device == nullptr: the CPU backend. Allocates the three layers' models and frees them.
struct LayerProfile {
  double embedding_ms = 0.0, block_ms = 0.0, head_ms = 0.0;
  std::vector<double> layer_costs(const GPT2Shape& shape) const;
};
LayerProfile profile_layers(const Config& config, const GPT2Shape& shape, ComputeDevice* device,
                            int repeats = 3);

// "embedding 0.31 ms, block 2.40 ms, head 1.92 ms (forward + backward, B=4, cpu fp32)".
std::string describe_layer_profile(const Config& config, const LayerProfile& profile);

// "pipeline.layer_costs=[0.31, 2.4, ...]": the --set override that gives a config the costs
// (shortest round-trip text, so it parses back to the same doubles).
std::string layer_costs_override(const std::vector<double>& costs);

}  // namespace pptrain
