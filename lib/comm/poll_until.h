// The one waiting loop of every transport: poll, sleeping between polls, give up after a
// timeout. A waiting rank leaves its core (and, on a shared GPU, the GPU) to the ranks that
// compute, and never waits forever.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace pptrain {

// Calls done() until it returns true, sleeping between calls (50 us growing to 2 ms). After
// timeout_s it calls on_timeout(seconds waited), which must throw.
template <typename Done, typename OnTimeout>
void poll_until(double timeout_s, Done&& done, OnTimeout&& on_timeout) {
  constexpr auto kMinSleep = std::chrono::microseconds(50);
  constexpr auto kMaxSleep = std::chrono::microseconds(2000);
  const auto start = std::chrono::steady_clock::now();
  auto sleep = kMinSleep;
  while (!done()) {
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited >= timeout_s) on_timeout(waited);
    std::this_thread::sleep_for(sleep);
    sleep = std::min(kMaxSleep, sleep * 2);
  }
}

}  // namespace pptrain
