// Global gradient norm; clipping is AdamW's grad_scale (kernels/adamw.h). The squared norm is
// summed in double so the result does not depend on how the parameters are split into tensors
// or stages beyond round-off.
#pragma once

#include <cstddef>

namespace pptrain::kernels::cpu {

double sum_of_squares(const float* x, std::size_t n);

}  // namespace pptrain::kernels::cpu
