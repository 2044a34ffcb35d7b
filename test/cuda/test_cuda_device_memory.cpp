// [cuda] DeviceBuffer: per-category accounting (current and peak), moves, zero/poison and copies.
#include <cstring>

#include "cuda_test_util.h"

TEST_CASE("CUDA device buffers count their bytes per category", "[cuda]") {
  using pptrain::MemCategory;
  namespace kc = pptrain::kernels::cuda;
  pptrain::MemoryTracker tracker;
  {
    kc::DeviceBuffer params(tracker, MemCategory::Params, 1000);
    kc::DeviceBuffer acts(tracker, MemCategory::Activations, 4096);
    CHECK(tracker.current(MemCategory::Params) == 1000);
    CHECK(tracker.current(MemCategory::Activations) == 4096);
    {
      kc::DeviceBuffer tmp(tracker, MemCategory::Activations, 100);
      CHECK(tracker.current(MemCategory::Activations) == 4196);
    }
    CHECK(tracker.current(MemCategory::Activations) == 4096);
    CHECK(tracker.peak(MemCategory::Activations) == 4196);

    kc::DeviceBuffer moved = std::move(acts);
    CHECK(moved.bytes() == 4096);
    CHECK(acts.bytes() == 0);
    CHECK(tracker.current(MemCategory::Activations) == 4096);

    std::vector<unsigned char> host(1000, 7), back(1000, 0);
    params.copy_from_host(host.data(), host.size());
    params.copy_to_host(back.data(), back.size());
    CHECK(back == host);
    params.zero();
    kc::synchronize({});
    params.copy_to_host(back.data(), back.size());
    CHECK(back == std::vector<unsigned char>(1000, 0));
    params.poison();
    kc::synchronize({});
    params.copy_to_host(back.data(), back.size());
    CHECK(back == std::vector<unsigned char>(1000, 0xFF));
    CHECK_THROWS(params.copy_from_host(host.data(), 1001));
  }
  CHECK(tracker.current(MemCategory::Params) == 0);
  CHECK(tracker.current(MemCategory::Activations) == 0);
  CHECK(tracker.peak(MemCategory::Params) == 1000);
  CHECK(tracker.peak_total() == 5196);
}
