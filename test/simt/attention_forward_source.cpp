// kernels/cuda/attention_forward.cu compiled by g++ for the SIMT emulator (PPTRAIN_SIMT_EMULATION).
#include "kernels/cuda/attention_forward.cu"
