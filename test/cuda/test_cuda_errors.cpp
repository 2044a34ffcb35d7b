// [cuda] bad arguments to the CUDA ops throw pptrain::Error with a message, before any launch.
#include "cuda_test_util.h"

TEST_CASE("CUDA ops reject bad shapes and scratch with a clear error", "[cuda]") {
  namespace kc = pptrain::kernels::cuda;
  using kc::DType;
  using Catch::Matchers::Contains;
  // Head size 160 > 128, and C not a multiple of NH.
  CHECK_THROWS_WITH(kc::attention_forward(nullptr, nullptr, nullptr, 1, 4, 160, 1, DType::F32, {}),
                    Contains("head size"));
  CHECK_THROWS_WITH(kc::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 36,
                                           5, DType::F32, {}),
                    Contains("multiple of NH"));
  // Attention tile shapes the kernels are not built in.
  kc::AttentionTiling six_warps;
  six_warps.forward_warps = 6;
  CHECK_THROWS_WITH(kc::attention_forward(nullptr, nullptr, nullptr, 1, 4, 64, 1, DType::BF16, {},
                                          six_warps),
                    Contains("forward_warps 6"));
  kc::AttentionTiling query_rows_48;
  query_rows_48.dkv_query_rows = 48;
  CHECK_THROWS_WITH(kc::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 64, 1,
                                           DType::BF16, {}, true, query_rows_48),
                    Contains("dkv_query_rows 48"));
  CHECK_THROWS_WITH(kc::classifier_forward_backward(nullptr, nullptr, nullptr, 2, 9, 8, 1.0f, true,
                                                    DType::F32, {}),
                    Contains("Vp"));
  char small[16];
  CHECK_THROWS_WITH(kc::encoder_backward(nullptr, nullptr, nullptr, nullptr, 2, 8, 24, 50, DType::F32,
                                         small, sizeof small, {}),
                    Contains("scratch"));
  CHECK_THROWS_WITH(kc::sum_of_squares(nullptr, nullptr, 10, small, sizeof small, {}),
                    Contains("scratch"));
  pptrain::kernels::AdamwStep step0;
  step0.t = 0;
  CHECK_THROWS_WITH(kc::adamw_update({}, {}, step0, {}), Contains("counts from 1"));
  CHECK_THROWS_WITH(kc::adamw_update({}, {}, pptrain::kernels::AdamwStep{}, {}),
                    Contains("must not be null"));
  // Zero sizes are no-ops, even with null pointers.
  CHECK_NOTHROW(kc::gelu_forward(nullptr, nullptr, 0, DType::BF16, {}));
  CHECK_NOTHROW(kc::layernorm_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 24,
                                      DType::F32, {}));
}
