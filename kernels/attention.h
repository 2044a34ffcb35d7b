// Causal multi-head self-attention. inp (B,T,3C) holds q, k, v side by side (as the
// qkv projection writes them); NH heads of size hs = C/NH; scale 1/sqrt(hs).
// att (B,NH,T,T) receives the softmax probabilities (zero above the diagonal), which the
// backward needs; out (B,T,C) is the heads' outputs concatenated. Backward accumulates into
// dinp (B,T,3C); its scratch is internal.
#pragma once

namespace pptrain::kernels::cpu {

template <typename F>
void attention_forward(F* out, F* att, const F* inp, int B, int T, int C, int NH);

template <typename F>
void attention_backward(F* dinp, const F* dout, const F* inp, const F* att, int B, int T, int C,
                        int NH);

}  // namespace pptrain::kernels::cpu
