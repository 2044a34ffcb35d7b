// kernels/cuda/attention_backward.cu compiled by g++ for the SIMT emulator (PPTRAIN_SIMT_EMULATION).
#include "kernels/cuda/attention_backward.cu"
