// When the GPU ran what a rank queued on its compute stream, in the host's clock. Kernels
// run asynchronously: the host returns from queueing a stage's forward long before the GPU
// has run it, so host timestamps around a compute action measure the queueing, not the work.
// mark() records a timing event after the work queued so far; settle() waits for the stream,
// reads the host clock, and from then on at(i) is when the GPU passed mark i (the GPU's
// elapsed times counted back from the moment the host saw the stream finish, so at most the
// wake-up latency of that wait late). The executor times every compute action this way on a
// GPU, so traces, the logged bubble and the measured action costs are the GPU's.
#pragma once

#include <functional>
#include <memory>
#include <vector>

namespace pptrain {

class ComputeDevice;

class StreamClock {
 public:
  explicit StreamClock(ComputeDevice& device);
  ~StreamClock();
  StreamClock(const StreamClock&) = delete;
  StreamClock& operator=(const StreamClock&) = delete;

  int mark();  // index of the new mark; marks count from 0 after each settle
  // Waits for the stream, then reads host_now_us() as the moment its work ended.
  void settle(const std::function<double()>& host_now_us);
  double at(int mark) const;  // host microseconds; after settle, for its marks

 private:
  struct Events;
  ComputeDevice& device_;
  std::unique_ptr<Events> events_;  // reused from step to step
  int marks_ = 0;
  std::vector<double> settled_;     // at(i) of the last settle
};

}  // namespace pptrain
