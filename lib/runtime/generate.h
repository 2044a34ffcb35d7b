// Sampling one token from a row of logits (temperature 1), for the sample printed at the
// end of training (PipelineExecutor::generate runs the model).
#pragma once

#include "core/rng.h"

namespace pptrain {

// logits: at least vocab_size values (the padded tail is ignored).
int sample_token(const float* logits, int vocab_size, Rng& rng);

}  // namespace pptrain
