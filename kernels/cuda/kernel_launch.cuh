// One way to launch a kernel from a host wrapper, and stream-ordered scratch: with nvcc a
// checked <<< >>> launch (opting in to more than 48 KiB of dynamic shared memory when asked);
// built with PPTRAIN_SIMT_EMULATION (g++, tests only) the same call runs the kernel's source in
// the SIMT emulator over host memory. So a .cu file whose launches all go through here compiles
// both ways, and the emulator tests call its public host functions themselves.
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/cuda/common.cuh"

namespace pptrain::kernels::cuda {

template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
#ifdef PPTRAIN_SIMT_EMULATION
  (void)stream;
  ::pptrain::simt::launch(
      {grid.x, grid.y, grid.z}, {block.x, block.y, block.z}, shared_bytes,
      [&] { kernel(static_cast<Params>(args)...); }, ::pptrain::simt::default_launch_options());
#else
  if (shared_bytes > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(shared_bytes)));
  }
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<Params>(std::forward<Args>(args))...);
  CUDA_CHECK_LAUNCH();
#endif
}

// `count` values of T in stream-ordered device memory for the kernels queued on `stream`
// between construction and destruction (ComputeDevice keeps the pool's blocks, so no
// allocation once warm); host memory in the SIMT emulator.
template <typename T>
class StreamScratch {
 public:
  StreamScratch(std::size_t count, cudaStream_t stream) : stream_(stream) {
#ifdef PPTRAIN_SIMT_EMULATION
    data_ = new T[count];
#else
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&data_), count * sizeof(T), stream));
#endif
  }
  ~StreamScratch() {
#ifdef PPTRAIN_SIMT_EMULATION
    delete[] data_;
#else
    cudaFreeAsync(data_, stream_);  // no throw from a destructor; a fault shows at the next check
#endif
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace pptrain::kernels::cuda
