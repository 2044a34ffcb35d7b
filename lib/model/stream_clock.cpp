#include "model/stream_clock.h"

#include "core/error.h"
#include "model/compute_device.h"
#if PPTRAIN_WITH_CUDA
#include "kernels/cuda/device_memory.h"
#endif

namespace pptrain {

#if PPTRAIN_WITH_CUDA
struct StreamClock::Events {
  std::vector<std::unique_ptr<kernels::cuda::StreamEvent>> marks;  // timed
  kernels::cuda::StreamEvent end{true};  // recorded by settle, after every mark
};
#else
struct StreamClock::Events {};
#endif

StreamClock::StreamClock(ComputeDevice& device) : device_(device), events_(std::make_unique<Events>()) {}

StreamClock::~StreamClock() = default;

int StreamClock::mark() {
#if PPTRAIN_WITH_CUDA
  if (marks_ == static_cast<int>(events_->marks.size())) {
    events_->marks.push_back(std::make_unique<kernels::cuda::StreamEvent>(/*timed=*/true));
  }
  events_->marks[marks_]->record(device_.stream());
  return marks_++;
#else
  PPT_THROW("no CUDA backend in this build");
#endif
}

void StreamClock::settle(const std::function<double()>& host_now_us) {
#if PPTRAIN_WITH_CUDA
  events_->end.record(device_.stream());
  events_->end.wait_host();
  const double end_us = host_now_us();
  settled_.resize(marks_);
  for (int i = 0; i < marks_; ++i) {
    settled_[i] = end_us - 1000.0 * kernels::cuda::elapsed_ms(*events_->marks[i], events_->end);
  }
  marks_ = 0;
#else
  (void)host_now_us;
  PPT_THROW("no CUDA backend in this build");
#endif
}

double StreamClock::at(int mark) const {
  PPT_CHECK(mark >= 0 && mark < static_cast<int>(settled_.size()), "mark {} was not settled", mark);
  return settled_[mark];
}

}  // namespace pptrain
