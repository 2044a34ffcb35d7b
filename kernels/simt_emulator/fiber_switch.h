// Stackful context switching for the SIMT emulator's fibers (one per CUDA thread): on x86-64 a
// few instructions of System V assembly, elsewhere ucontext. glibc's swapcontext makes two
// system calls a switch (it saves and restores the signal mask), and the emulator switches at
// every barrier and warp collective of every thread: the assembly runs the [cuda] tests in the
// emulator several times faster. Built with AddressSanitizer, the switches tell it which stack
// runs (its fiber annotations), so a kernel's out-of-bounds access is reported, not the switch.
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace pptrain::simt {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;  // the saved stack pointer; the callee-saved registers lie above it
#else
  ucontext_t uc{};
#endif
  // The stack's extent, for AddressSanitizer's fiber annotations (unused otherwise).
  const void* stack_bottom = nullptr;
  std::size_t stack_bytes = 0;
};

// Makes `ctx` the context of the calling OS thread on its own stack (the scheduler's).
void adopt_thread(FiberContext& ctx);

// Makes `ctx` start entry() on the stack [stack, stack + bytes) at the first switch to it.
// entry must call fiber_started() first and never return: it ends by switching away for good.
void prepare_fiber(FiberContext& ctx, unsigned char* stack, std::size_t bytes, void (*entry)());
void fiber_started();

// Saves the running context in `from` and resumes `to`; returns when something switches back.
void switch_fiber(FiberContext& from, FiberContext& to);

}  // namespace pptrain::simt
