// Global gradient norm and clipping. The squared norm is summed in double so the result
// does not depend on how the parameters are split into tensors or stages beyond round-off.
#pragma once

#include <cstddef>

namespace pptrain::kernels::cpu {

double sum_of_squares(const float* x, std::size_t n);
void scale_in_place(float* x, std::size_t n, float factor);

}  // namespace pptrain::kernels::cpu
