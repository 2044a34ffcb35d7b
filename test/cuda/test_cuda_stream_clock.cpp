// The executor's GPU timeline (model/stream_clock.h): marks around queued work time the GPU's
// running of it, not the host's queueing. On a GPU the host queues 200 GELU passes in far less
// time than the GPU runs them, so a clock that read the host around the queueing would fail
// the first check; in the emulated backend work runs as it is queued, so both agree there.
#include <catch2/catch.hpp>

#include <chrono>

#include "core/memory.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"
#include "model/compute_device.h"
#include "model/stream_clock.h"

using namespace pptrain;
namespace kc = pptrain::kernels::cuda;

TEST_CASE("A stream clock times the GPU's work, in the host's clock", "[cuda]") {
  ComputeDevice device(0, "fp32");
  MemoryTracker memory;
  const std::size_t n = std::size_t{1} << 22;  // 16 MiB a pass: about 10 us on an H200
  kc::DeviceBuffer a(memory, MemCategory::Workspace, n * sizeof(float));
  kc::DeviceBuffer b(memory, MemCategory::Workspace, n * sizeof(float));
  a.zero(device.stream());
  auto now_us = [] {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  StreamClock clock(device);
  for (int round = 0; round < 2; ++round) {  // the events are reused from one settle to the next
    device.synchronize();
    const double before = now_us();
    const int start = clock.mark();
    for (int i = 0; i < 100; ++i) {
      kc::gelu_forward(b.data(), a.data(), n, kc::DType::F32, device.stream());
      kc::gelu_forward(a.data(), b.data(), n, kc::DType::F32, device.stream());
    }
    const int middle = clock.mark();
    kc::gelu_forward(b.data(), a.data(), n, kc::DType::F32, device.stream());
    const int end = clock.mark();
    clock.settle(now_us);
    const double after = now_us();
    CAPTURE(round, before, clock.at(start), clock.at(middle), clock.at(end), after);
    CHECK(start == 0);
    CHECK(before <= clock.at(start));
    CHECK(clock.at(start) <= clock.at(middle));
    CHECK(clock.at(middle) <= clock.at(end));
    CHECK(clock.at(end) <= after);
    // The 200 passes took most of the time the host waited for them.
    CHECK(clock.at(middle) - clock.at(start) >= 0.5 * (after - before));
  }
  CHECK_THROWS_WITH(clock.at(3), Catch::Contains("mark 3 was not settled"));
}
