#include "model/compute_device.h"

#include "core/error.h"
#include "kernels/cuda_device.h"
#if PPTRAIN_WITH_CUDA
#include <map>
#include <tuple>

#include "kernels/cuda/attention_tuning.h"
#include "kernels/cuda/cuda_ops.h"
#endif

namespace pptrain {

#if PPTRAIN_WITH_CUDA
struct ComputeDevice::Impl {
  explicit Impl(MemoryTracker& memory) : blas(memory) {}
  kernels::cuda::OwnedStream stream;
  kernels::cuda::CublasLtContext blas;
  std::map<std::tuple<int, int, int, int>, kernels::cuda::AttentionTuning> attention;  // (B,T,C,NH)
};
#else
struct ComputeDevice::Impl {};
#endif

ComputeDevice::ComputeDevice(int index, const std::string& precision) : index_(index) {
  PPT_CHECK(precision == "fp32" || precision == "bf16",
            "precision '{}' is not one of fp32, bf16", precision);
  dtype_ = precision == "bf16" ? kernels::cuda::DType::BF16 : kernels::cuda::DType::F32;
#if PPTRAIN_WITH_CUDA
  const int count = kernels::cuda::device_count();
  PPT_CHECK(count > 0, "runtime.device is cuda but no GPU is visible (CUDA_VISIBLE_DEVICES='{}')",
            std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "unset");
  PPT_CHECK(index >= 0 && index < count, "GPU {} does not exist: {} visible", index, count);
  kernels::cuda::use_device(index);
  impl_ = std::make_unique<Impl>(memory_);
#else
  PPT_THROW("runtime.device is cuda but this build has no CUDA backend: rebuild with "
            "-DPPTRAIN_CUDA=ON (needs nvcc), or set runtime.device: cpu");
#endif
}

ComputeDevice::~ComputeDevice() = default;

kernels::cuda::Stream ComputeDevice::stream() const {
#if PPTRAIN_WITH_CUDA
  return impl_->stream.get();
#else
  return {};
#endif
}

kernels::cuda::CublasLtContext& ComputeDevice::blas() {
#if PPTRAIN_WITH_CUDA
  return impl_->blas;
#else
  PPT_THROW("no CUDA backend in this build");
#endif
}

std::string ComputeDevice::description() const {
  return fmt::format("GPU {}: {}, {}", index_, kernels::cuda::device_description(index_),
                     kernels::cuda::dtype_name(dtype_));
}

void ComputeDevice::synchronize() const {
#if PPTRAIN_WITH_CUDA
  kernels::cuda::synchronize(stream());
#endif
}

const kernels::cuda::AttentionTiling& ComputeDevice::attention_tiling(int B, int T, int C, int NH,
                                                                       void* scratch,
                                                                       std::size_t scratch_bytes) {
#if PPTRAIN_WITH_CUDA
  const auto key = std::make_tuple(B, T, C, NH);
  auto it = impl_->attention.find(key);
  if (it == impl_->attention.end()) {
    it = impl_->attention
             .emplace(key, kernels::cuda::tune_attention(scratch, scratch_bytes, B, T, C, NH,
                                                         dtype_, stream()))
             .first;
  }
  return it->second.tiling;
#else
  (void)B, (void)T, (void)C, (void)NH, (void)scratch, (void)scratch_bytes;
  PPT_THROW("no CUDA backend in this build");
#endif
}

std::vector<std::string> ComputeDevice::tuning_report() const {
  std::vector<std::string> lines;
#if PPTRAIN_WITH_CUDA
  for (const auto& [key, r] : impl_->attention) {
    if (r.shapes_timed == 0) continue;
    const auto& [B, T, C, NH] = key;
    lines.push_back(fmt::format(
        "attention tile shapes (B={} T={} C={} NH={}; {} timed, the fastest kept): forward {} "
        "{:.3f} ms (default {:.3f}), backward {} {:.3f} ms (default {:.3f})",
        B, T, C, NH, r.shapes_timed, kernels::cuda::forward_shape_name(r.tiling), r.forward_ms,
        r.default_forward_ms, kernels::cuda::backward_shape_name(r.tiling), r.backward_ms,
        r.default_backward_ms));
  }
#endif
  return lines;
}

}  // namespace pptrain
